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
