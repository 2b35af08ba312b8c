"""Real mail (MAIL_BACKEND=smtp) needs the portal's URL: e-mailed links never point to the example portal."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from accounts.settings import PROJECT_ROOT, Settings

SMTP = {"MAIL_BACKEND": "smtp", "SMTP_HOST": "127.0.0.1", "SMTP_STARTTLS": "0"}


def test_the_account_settings_refuse_real_mail_without_the_portal_url():
    with pytest.raises(ValueError, match="ACCOUNTS_PORTAL_BASE_URL"):
        Settings.from_env(SMTP)
    with pytest.raises(ValueError, match="ACCOUNTS_PORTAL_BASE_URL"):
        Settings.from_env({**SMTP, "ACCOUNTS_PORTAL_BASE_URL": "  "})
    assert Settings.from_env({**SMTP, "ACCOUNTS_PORTAL_BASE_URL": "https://my.portal.example"}).portal_base_url \
        == "https://my.portal.example"
    assert Settings.from_env({"MAIL_BACKEND": "file"}).portal_base_url == "https://portal.example.com"


def run(argv, tmp_path, **env):
    environ = {k: v for k, v in os.environ.items() if k not in ("ACCOUNTS_PORTAL_BASE_URL", "MAIL_BACKEND")}
    return subprocess.run([sys.executable, *argv], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120,
                          env={**environ, "PYTHONPATH": str(PROJECT_ROOT),
                               "ACCOUNTS_DB_URL": f"sqlite:///{tmp_path / 'accounts.db'}", **env})


def test_the_mail_dispatcher_refuses_to_start_and_says_why(tmp_path):
    result = run(["-m", "accounts", "dispatch", "--once"], tmp_path, **SMTP)
    assert result.returncode == 2
    assert "set ACCOUNTS_PORTAL_BASE_URL" in result.stderr


def test_make_run_refuses_to_start_with_real_mail_and_no_portal_url(tmp_path):
    result = run(["-m", "supportbot.runner"], tmp_path, **SMTP, MAIL_DIR=str(tmp_path / "mail"))
    assert result.returncode == 1
    assert "set ACCOUNTS_PORTAL_BASE_URL" in result.stdout + result.stderr
    assert not (tmp_path / "accounts.db").exists()  # refused before anything was prepared
