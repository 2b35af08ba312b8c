"""The whole-token secret scan: finds secrets where they are written, never inside digests or timestamps."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.secret_scan import contains_secret, leaked

CODE = "930977"


@pytest.mark.parametrize("text", [
    f"your code is {CODE}",
    json.dumps({"text": CODE}),
    f"code={CODE}&x=1",
    f"Your code: {CODE}.",
    f"[{CODE}]",
    f"2026-12-02 07:00:00 INFO user said '{CODE}'",
])
def test_a_secret_written_out_is_found(text: str):
    assert contains_secret(text, CODE)


@pytest.mark.parametrize("text", [
    # the failure of issue 16: a digest that happens to contain the code
    json.dumps({"request_hash": f"9f{CODE}ab" + "0" * 56}),
    json.dumps({"timestamp": float(f"1764658574.{CODE}")}),
    f"2026-12-02T07:00:00.{CODE}+00:00",
    f"tok-{CODE}x-0001",
    f"sender op-1a{CODE}",
    f"abc_{CODE}",
])
def test_a_secret_inside_another_token_is_not_a_leak(text: str):
    assert not contains_secret(text, CODE)


def test_a_real_digest_of_the_code_does_not_count_and_the_scan_reports_only_leaks():
    digest = hashlib.sha256(CODE.encode()).hexdigest()
    text = f"hash {digest} and recovery ABCD-EFGH-JKLM-NPQR"
    assert leaked(text, [CODE, "ABCD-EFGH-JKLM-NPQR", "ABCDEFGHJKLMNPQR"]) == ["ABCD-EFGH-JKLM-NPQR"]


def test_an_empty_secret_is_refused():
    with pytest.raises(ValueError):
        contains_secret("anything", "")
