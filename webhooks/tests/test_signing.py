"""The Dumont-Signature header: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "t.body")>."""

import hashlib
import hmac

import pytest

from webhooks.signing import sign, signature_header, verify

SECRET = "whsec_test-secret"
BODY = b'{"id":"5d1c","type":"instance.running","data":{}}'
NOW = 1_800_000_000


def test_the_signature_is_the_hmac_of_timestamp_dot_body():
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()

    assert sign(SECRET, BODY, NOW) == expected
    assert signature_header(SECRET, BODY, NOW) == f"t={NOW},v1={expected}"


def test_a_signed_body_verifies_within_the_tolerance():
    header = signature_header(SECRET, BODY, NOW)

    assert verify(SECRET, BODY, header, now=NOW + 299)
    assert verify(SECRET, BODY.decode(), header, now=NOW)


def test_a_changed_body_does_not_verify():
    header = signature_header(SECRET, BODY, NOW)

    assert not verify(SECRET, BODY.replace(b"running", b"deleted"), header, now=NOW)


def test_another_secret_does_not_verify():
    header = signature_header("whsec_other", BODY, NOW)

    assert not verify(SECRET, BODY, header, now=NOW)


@pytest.mark.parametrize("offset_seconds", [301, -301, 86_400])
def test_a_timestamp_outside_five_minutes_is_refused(offset_seconds):
    header = signature_header(SECRET, BODY, NOW)

    assert not verify(SECRET, BODY, header, now=NOW + offset_seconds)


@pytest.mark.parametrize(
    "header", ["", "garbage", f"t={NOW}", "v1=abc", f"t=soon,v1={sign(SECRET, BODY, NOW)}"]
)
def test_a_malformed_header_does_not_verify(header):
    assert not verify(SECRET, BODY, header, now=NOW)


def test_any_of_several_v1_signatures_may_match():
    header = f"t={NOW},v1={'0' * 64},v1={sign(SECRET, BODY, NOW)}"

    assert verify(SECRET, BODY, header, now=NOW)
