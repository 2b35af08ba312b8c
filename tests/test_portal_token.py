"""Portal tokens: only a token the portal signed, unexpired, identifies a customer."""

import datetime as dt

import jwt
import pytest

from supportbot.portal_token import InvalidPortalToken, PortalTokenVerifier

SECRET = "s" * 40
NOW = dt.datetime(2026, 11, 24, 12, 0, tzinfo=dt.timezone.utc)


class FakeClock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(NOW)


@pytest.fixture
def verifier(clock) -> PortalTokenVerifier:
    return PortalTokenVerifier(SECRET, clock=clock)


def test_a_portal_token_identifies_the_customer(verifier):
    identity = verifier.verify(verifier.issue("42", "Ann@Example.com"))
    assert (identity.account_id, identity.email) == ("42", "ann@example.com")
    assert "token" not in str(identity.as_metadata()).lower().replace("portal_token", "")


def test_a_token_signed_with_another_secret_is_refused(verifier, clock):
    forged = PortalTokenVerifier("x" * 40, clock=clock).issue("42", "ann@example.com")
    with pytest.raises(InvalidPortalToken):
        verifier.verify(forged)


def test_an_expired_token_is_refused(verifier, clock):
    token = verifier.issue("42", "ann@example.com", dt.timedelta(minutes=5))
    clock.now = NOW + dt.timedelta(minutes=6)
    with pytest.raises(InvalidPortalToken, match="expired"):
        verifier.verify(token)


@pytest.mark.parametrize("claims", [
    {"alg": "none"},
    {"aud": "someone-else"},
    {"lifetime": dt.timedelta(days=30)},
    {"drop": "exp"},
], ids=["unsigned", "wrong-audience", "too-long-lived", "no-expiry"])
def test_tampered_tokens_are_refused(verifier, claims):
    payload = {"iss": "portal", "aud": claims.get("aud", "support-assistant"), "sub": "42",
               "email": "ann@example.com", "iat": int(NOW.timestamp()),
               "exp": int((NOW + claims.get("lifetime", dt.timedelta(hours=1))).timestamp()),
               "jti": "abc"}
    payload.pop(claims.get("drop", ""), None)
    if claims.get("alg") == "none":
        token = jwt.encode(payload, None, algorithm="none")
    else:
        token = jwt.encode(payload, SECRET, algorithm="HS256")
    with pytest.raises(InvalidPortalToken):
        verifier.verify(token)


@pytest.mark.parametrize("token", [None, "", "not-a-jwt", 12])
def test_missing_or_garbage_tokens_are_refused(verifier, token):
    with pytest.raises(InvalidPortalToken):
        verifier.verify(token)


def test_a_short_secret_is_refused():
    with pytest.raises(ValueError):
        PortalTokenVerifier("short")


# ----------------------------------------------------------------------------- demo sign-in


def test_a_demo_sign_in_token_identifies_nobody_where_demo_sign_in_is_off(verifier, clock):
    demo_token = PortalTokenVerifier(SECRET, clock=clock).issue("42", "ann@example.com", demo=True)
    with pytest.raises(InvalidPortalToken):
        verifier.verify(demo_token)  # same secret, but a production verifier
    demo_verifier = PortalTokenVerifier(SECRET, clock=clock, accepts_demo_tokens=True)
    assert demo_verifier.verify(demo_token).account_id == "42"
    assert demo_verifier.verify(verifier.issue("7", "bob@example.com")).account_id == "7"


def test_a_token_without_an_issuer_is_refused(verifier, clock):
    claims = {"aud": "support-assistant", "sub": "42", "email": "a@b.example", "jti": "x",
              "iat": int(NOW.timestamp()), "exp": int(NOW.timestamp()) + 60}
    with pytest.raises(InvalidPortalToken):
        PortalTokenVerifier(SECRET, clock=clock, accepts_demo_tokens=True).verify(
            jwt.encode(claims, SECRET, algorithm="HS256"))


@pytest.fixture
def dev_secret_file(tmp_path):
    from supportbot.portal_token import development_secret

    path = tmp_path / "var" / "dev_portal_token_secret"
    assert development_secret(path) is None
    development_secret(path, create=True)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    return path


@pytest.mark.parametrize("changes, refusal", [
    ({}, None),
    ({"WEB_HOST": "::1"}, None),
    ({"WEB_HOST": "localhost"}, None),
    ({"WIDGET_DEMO_LOGIN": "0"}, "WIDGET_DEMO_LOGIN is off"),
    ({"PORTAL_TOKEN_SECRET": "p" * 48}, "PORTAL_TOKEN_SECRET is not the development secret in var/"),
    ({"PORTAL_TOKEN_SECRET": ""}, "PORTAL_TOKEN_SECRET is not the development secret in var/"),
    ({"WEB_HOST": "0.0.0.0"}, "WEB_HOST is not a loopback address"),
    ({"WEB_HOST": "10.0.0.5"}, "WEB_HOST is not a loopback address"),
    ({"WEB_HOST": "chat.example.com"}, "WEB_HOST is not a loopback address"),
])
def test_demo_sign_in_needs_the_flag_the_development_secret_and_a_loopback_web_host(
        dev_secret_file, changes, refusal):
    from supportbot.portal_token import demo_sign_in_refusal

    env = {"WIDGET_DEMO_LOGIN": "1", "PORTAL_TOKEN_SECRET": dev_secret_file.read_text().strip(),
           "WEB_HOST": "127.0.0.1", **changes}
    assert demo_sign_in_refusal(env, dev_secret_file) == refusal


def test_with_a_real_secret_the_verifier_from_the_environment_refuses_demo_tokens(clock):
    from supportbot.portal_token import development_secret, verifier_from_env

    real = verifier_from_env({"PORTAL_TOKEN_SECRET": SECRET, "WIDGET_DEMO_LOGIN": "1"}, clock)
    with pytest.raises(InvalidPortalToken):
        real.verify(real.issue("42", "ann@example.com", demo=True))
    dev = development_secret(create=True)  # what `make run` uses
    local = verifier_from_env({"PORTAL_TOKEN_SECRET": dev, "WIDGET_DEMO_LOGIN": "1"}, clock)
    assert local.verify(local.issue("42", "ann@example.com", demo=True)).account_id == "42"
    public = verifier_from_env({"PORTAL_TOKEN_SECRET": dev, "WIDGET_DEMO_LOGIN": "1",
                                "WEB_HOST": "0.0.0.0"}, clock)
    with pytest.raises(InvalidPortalToken):
        public.verify(public.issue("42", "ann@example.com", demo=True))


@pytest.mark.parametrize("web_host, status", [("127.0.0.1", 200), ("0.0.0.0", 404)])
def test_the_demo_sign_in_route_exists_only_where_demo_sign_in_may_run(monkeypatch, web_host, status):
    import asyncio

    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from supportbot.portal_token import development_secret
    from supportbot.settings import load_settings
    from supportbot.widget import add_widget_routes

    monkeypatch.setenv("WIDGET_DEMO_LOGIN", "1")
    monkeypatch.setenv("PORTAL_TOKEN_SECRET", development_secret(create=True))
    monkeypatch.setenv("WEB_HOST", web_host)

    async def post_demo_login() -> int:
        app = web.Application()
        add_widget_routes(app, load_settings())
        async with TestClient(TestServer(app)) as client:
            response = await client.post("/widget/demo-login",
                                         json={"account_id": "1", "email": "clean@demo.example"})
            return response.status

    assert asyncio.run(post_demo_login()) == status
