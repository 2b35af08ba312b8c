"""The deployment files are consistent with the code: nginx accepts the configs, compose runs real modules."""

from __future__ import annotations

import importlib.util
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Dict, List

import pytest
import requests
import yaml

from supportbot.cluster import (
    NGINX_BINARY,
    _compose_nginx_config,
    check_nginx_config,
    render_nginx_config,
)
from supportbot.runner import free_port
from supportbot.settings import PROJECT_ROOT

DEPLOY = PROJECT_ROOT / "deploy"


def test_the_committed_compose_nginx_config_is_the_rendered_template():
    assert (DEPLOY / "nginx.conf").read_text() == _compose_nginx_config(
        "rasa-1:5005,rasa-2:5005", "actions-1:5055,actions-2:5055"), \
        "deploy/nginx.conf is stale: python -m supportbot.cluster nginx-config > deploy/nginx.conf"


@pytest.mark.parametrize("variant", ["local", "compose"])
def test_nginx_accepts_the_config(variant: str, tmp_path: Path):
    if variant == "local":
        text = render_nginx_config(listen="127.0.0.1:1", action_listen="127.0.0.1:2",
                                   rasa_servers=["127.0.0.1:3", "127.0.0.1:4"],
                                   action_servers=["127.0.0.1:5"], run_dir=str(tmp_path),
                                   error_log=str(tmp_path / "error.log"), debug_headers=True)
    else:  # the compose config, with addresses nginx can resolve here
        text = _compose_nginx_config("127.0.0.1:3,127.0.0.1:4", "127.0.0.1:5").replace(
            "/tmp/", f"{tmp_path}/")
    assert "@" not in text.replace("@NAME@", "")
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    check_nginx_config(config, tmp_path)  # raises with nginx's message


def test_compose_services_run_modules_and_files_of_the_image():
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    for name, service in compose["services"].items():
        command = service.get("command") or []
        if not service.get("image", "").startswith("${SUPPORTBOT_IMAGE"):
            continue
        assert command[:2] == ["python", "-m"], name
        modules = [command[2]] + ([command[3]] if command[2] == "supportbot.log_redaction" else [])
        for module in modules:
            assert importlib.util.find_spec(module) is not None, (name, module)
            assert f"COPY {module.split('.')[0]}/" in dockerfile or module.startswith("rasa"), (name, module)
        for option in ("--credentials", "--endpoints", "--model"):
            if option in command:
                path = command[command.index(option) + 1]
                assert (PROJECT_ROOT / path).exists() and path.split("/")[-1] in dockerfile, path
    rasa = compose["services"]["rasa-1"]["environment"]
    assert rasa["REDIS_URL"].startswith("redis://") and rasa["TRACKER_DB_URL"].startswith("postgresql://")


def test_secrets_reach_only_the_services_that_use_them_and_real_mail_has_the_portal_url():
    compose = yaml.safe_load((DEPLOY / "compose.yml").read_text())
    services = compose["services"]
    holders = {secret: sorted(name for name, service in services.items()
                              if secret in (service.get("environment") or {}))
               for secret in ("PORTAL_TOKEN_SECRET", "ACTION_CLAIMS_KEY")}
    assert holders == {"PORTAL_TOKEN_SECRET": ["chatpage", "rasa-1", "rasa-2"],
                       "ACTION_CLAIMS_KEY": ["actions-1", "actions-2", "rasa-1", "rasa-2"]}
    assert services["mail"]["environment"]["MAIL_BACKEND"] == "smtp"
    assert services["mail"]["environment"]["ACCOUNTS_PORTAL_BASE_URL"].startswith("${ACCOUNTS_PORTAL_BASE_URL:?")
    example = dict(line.split("=", 1) for line in (DEPLOY / "example.env").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert {"ACCOUNTS_PORTAL_BASE_URL", "ACTION_CLAIMS_KEY", "PORTAL_TOKEN_SECRET"} <= set(example)


def test_each_service_logs_in_to_the_databases_it_uses_as_its_own_role():
    services = yaml.safe_load((DEPLOY / "compose.yml").read_text())["services"]
    urls = {name: {key: value for key, value in (service.get("environment") or {}).items()
                   if key in ("TRACKER_DB_URL", "ACCOUNTS_DB_URL")}
            for name, service in services.items() if name not in ("postgres", "redis", "nginx")}
    assert sorted(name for name, found in urls.items() if "TRACKER_DB_URL" in found) == [
        "console", "migrate-tracker", "rasa-1", "rasa-2", "scheduler"]
    for name, found in urls.items():
        users = {value.split("//")[1].split(":")[0] for value in found.values()}
        expected = "supportbot" if name.startswith("migrate") else f"supportbot_{name.split('-')[0]}"
        assert users == {expected}, name
        assert name.startswith("migrate") or "POSTGRES_PASSWORD" not in str(found), name
    mounts = " ".join(services["postgres"]["volumes"])
    assert "postgres-roles.sh:/docker-entrypoint-initdb.d/" in mounts and "postgres-roles.sql" in mounts
def test_nginx_logs_socketio_requests_without_their_query_string(tmp_path: Path):
    front, socket_backend = free_port(), free_port()  # nothing listens on the backend: 502
    access_log = tmp_path / "access.log"
    config = tmp_path / "nginx.conf"
    config.write_text(render_nginx_config(
        listen=f"127.0.0.1:{front}", action_listen=f"127.0.0.1:{free_port()}",
        rasa_servers=[f"127.0.0.1:{socket_backend}"], action_servers=[f"127.0.0.1:{free_port()}"],
        run_dir=str(tmp_path), error_log=str(tmp_path / "error.log"),
        access_log=str(access_log)))
    nginx = subprocess.Popen([NGINX_BINARY, "-p", str(tmp_path), "-e", "stderr", "-c", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        secret = "ticket-" + uuid.uuid4().hex
        url = f"http://127.0.0.1:{front}/socket.io/?EIO=4&transport=polling&ticket={secret}"
        assert wait_until_answered(url) == 502
        requests.get(f"http://127.0.0.1:{front}/webhooks/rest/?token={secret}", timeout=5)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
    logged = access_log.read_text()
    assert '"GET /socket.io/ HTTP/1.1" 502' in logged
    assert '"GET /webhooks/rest/ HTTP/1.1"' in logged
    assert secret not in logged


def wait_until_answered(url: str, timeout: float = 10.0) -> int:
    """The HTTP status of ``url`` once nginx listens."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return requests.get(url, timeout=5).status_code
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class _HeaderRecorder(BaseHTTPRequestHandler):
    """A stand-in Rasa instance that records the headers nginx forwards."""

    seen: List[Dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        body = b"[]"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_the_webhooks_get_the_client_address_host_and_a_request_id(tmp_path: Path):
    """A location with its own proxy_set_header drops the server's: each location repeats them."""
    backend = ThreadingHTTPServer(("127.0.0.1", 0), _HeaderRecorder)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    front = free_port()
    config = tmp_path / "nginx.conf"
    config.write_text(render_nginx_config(
        listen=f"127.0.0.1:{front}", action_listen=f"127.0.0.1:{free_port()}",
        rasa_servers=[f"127.0.0.1:{backend.server_address[1]}"], action_servers=[f"127.0.0.1:{free_port()}"],
        run_dir=str(tmp_path), error_log=str(tmp_path / "error.log")))
    nginx = subprocess.Popen([NGINX_BINARY, "-p", str(tmp_path), "-e", "stderr", "-c", str(config)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{front}/webhooks/rest/webhook"
        deadline = time.monotonic() + 10
        while True:
            try:
                answer = requests.post(url, json={"sender": "s", "message": "hi"},
                                       headers={"X-Forwarded-For": "203.0.113.7"}, timeout=5)
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        backend.shutdown()
    assert answer.status_code == 200
    [headers] = _HeaderRecorder.seen
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert headers["host"] == "127.0.0.1"
    assert len(headers["x-request-id"]) == 32
