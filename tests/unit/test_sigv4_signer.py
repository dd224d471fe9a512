"""The fan-out's SigV4 signer (bourse.adapters.sigv4_signer) against botocore's SigV4Auth, the
reference, and the local gateway's fast verifier (devstack.gateway.websocket) against its
botocore-based check: accepted exactly when botocore accepts."""

from __future__ import annotations

import time
from urllib.parse import quote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from bourse.adapters.sigv4_signer import Credentials, Signer
from devstack.gateway.management_auth import check
from devstack.gateway.sigv4 import IamUser
from devstack.gateway.websocket import signed_by_known_key

REGION = "us-east-1"
USERS = {"AKIDLOCAL": IamUser("AKIDLOCAL", "s3cr3t/key+", "arn:aws:iam::1:user/u", "AIDA1", "1")}
connection_ids = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=24
)
bodies = st.binary(max_size=300)
moment = 1_796_000_000.0


def _signer(token: str | None = None, host: str = "127.0.0.1:3000") -> Signer:
    creds = Credentials("AKIDLOCAL", "s3cr3t/key+", token)
    return Signer(lambda: creds, REGION, "execute-api", host, clock=lambda: moment)


def _botocore_authorization(path: str, body: bytes, headers: dict[str, str]) -> str:
    """botocore's SigV4Auth on the same request at the same time (its add_auth would take
    the clock's time: its public steps, as add_auth runs them)."""
    token = headers.get("X-Amz-Security-Token")
    sent = {"Host": headers["Host"], "X-Amz-Date": headers["X-Amz-Date"]}
    if token is not None:
        sent["X-Amz-Security-Token"] = token  # as add_auth adds it, before signing
    request = AWSRequest(
        method="POST", url=f"https://{headers['Host']}{path}", data=body, headers=sent
    )
    signer = SigV4Auth(BotoCredentials("AKIDLOCAL", "s3cr3t/key+", token), "execute-api", REGION)
    request.context["timestamp"] = headers["X-Amz-Date"]
    canonical = signer.canonical_request(request)
    signature = signer.signature(signer.string_to_sign(request, canonical), request)
    signed = signer.signed_headers(signer.headers_to_sign(request))
    return (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(request)}, SignedHeaders={signed}, "
        f"Signature={signature}"
    )


@settings(max_examples=200, deadline=None)
@given(
    connection_id=connection_ids,
    body=bodies,
    token=st.none() | st.text(alphabet="abcXYZ0123/+=", min_size=1, max_size=40),
)
def test_signatures_are_botocores(connection_id: str, body: bytes, token: str | None) -> None:
    path = "/prod/@connections/" + quote(connection_id, safe="")
    headers = _signer(token, "abc.execute-api.us-east-1.amazonaws.com").headers("POST", path, body)
    assert headers["Authorization"] == _botocore_authorization(path, body, headers)
    assert headers.get("X-Amz-Security-Token") == token


def _pairs(headers: dict[str, str], body: bytes) -> list[tuple[str, str]]:
    return [*headers.items(), ("Content-Length", str(len(body)))]


@settings(max_examples=100, deadline=None)
@given(connection_id=connection_ids, body=bodies)
def test_the_fast_verifier_accepts_what_botocore_accepts(connection_id: str, body: bytes) -> None:
    global moment
    moment = time.time()
    path = "/@connections/" + quote(connection_id, safe="")
    pairs = _pairs(_signer().headers("POST", path, body), body)
    assert check("POST", path, pairs, body, USERS, REGION) is None
    assert signed_by_known_key("POST", path, pairs, body, USERS, REGION)


def test_the_fast_verifier_refuses_what_botocore_refuses() -> None:
    global moment
    moment = time.time()
    path, body = "/@connections/abc%3D", b'{"e":"trade"}'
    good = _signer().headers("POST", path, body)
    cases: list[tuple[str, list[tuple[str, str]], bytes]] = [
        (path, _pairs(good, body), b'{"e":"trade!"}'),  # another body
        ("/@connections/abd%3D", _pairs(good, body), body),  # another connection
        (path, _pairs({**good, "X-Amz-Date": "20200101T000000Z"}, body), body),  # old date
        (path, _pairs({**good, "Host": "127.0.0.1:3001"}, body), body),  # another host
        (path, _pairs({**good, "X-Amz-Security-Token": "t"}, body), body),  # session token
        (path, [(k, v) for k, v in good.items() if k != "Authorization"], body),  # unsigned
    ]
    other = Signer(lambda: Credentials("AKIDLOCAL", "wrong"), REGION, "execute-api",
                   "127.0.0.1:3000", clock=lambda: moment)  # fmt: skip
    cases.append((path, _pairs(other.headers("POST", path, body), body), body))
    stale = Signer(lambda: Credentials("AKIDLOCAL", "s3cr3t/key+"), REGION, "execute-api",
                   "127.0.0.1:3000", clock=lambda: moment - 301)  # fmt: skip
    cases.append((path, _pairs(stale.headers("POST", path, body), body), body))
    elsewhere = Signer(lambda: Credentials("AKIDLOCAL", "s3cr3t/key+"), "eu-west-1",
                       "execute-api", "127.0.0.1:3000", clock=lambda: moment)  # fmt: skip
    cases.append((path, _pairs(elsewhere.headers("POST", path, body), body), body))
    for case_path, pairs, case_body in cases:
        assert check("POST", case_path, pairs, case_body, USERS, REGION) is not None
        assert not signed_by_known_key("POST", case_path, pairs, case_body, USERS, REGION)
