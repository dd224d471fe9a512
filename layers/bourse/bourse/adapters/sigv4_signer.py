"""SigV4 header signatures for the fan-out's many small requests (one PostToConnection per
connection and message, the pushers' Invoke calls).

Why not botocore's ``SigV4Auth`` per request: it builds an ``AWSRequest``, canonicalises
generically and derives the signing key again (four HMACs) every time, about 200 us a request
on the 2-core box, and boto3's client adds parameter validation, serialisation, event hooks and
response parsing on top (1-3 ms per PostToConnection in all). A fan-out signs one request per
connection, so here the signing key is derived once per day, region and service and a request
costs two SHA-256s and one HMAC. The algorithm is AWS's (canonical request, string to sign,
derived key); tests/unit/test_sigv4_signer.py checks every signature against botocore's
``SigV4Auth``, and the local gateway verifies them with botocore as API Gateway would.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import quote

from botocore.utils import normalize_url_path

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str
    token: str | None = None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


@lru_cache(maxsize=16)
def signing_key(secret_key: str, day: str, region: str, service: str) -> bytes:
    """The derived key of one day (``YYYYMMDD``), region and service."""
    return _hmac(_hmac(_hmac(_hmac(f"AWS4{secret_key}".encode(), day), region), service),
                 "aws4_request")  # fmt: skip


_PLAIN_PATH = re.compile(r"[A-Za-z0-9_.~/%@-]*")


def canonical_path(path: str) -> str:
    """The canonical URI of an already percent-encoded path, as botocore forms it: dot
    segments and empty segments removed, then every character but unreserved ones and ``/``
    encoded again (a non-S3 service's double encoding)."""
    if _PLAIN_PATH.fullmatch(path) and "/." not in path and "//" not in path:
        # @connections paths: quote's result, without its cost
        return path.replace("%", "%25").replace("@", "%40")
    return quote(normalize_url_path(path), safe="/~")


@dataclass(frozen=True)
class _Second:
    """What every request signed within one second shares."""

    second: int
    amz_date: str
    header_block: str  # the canonical headers, then the signed header names
    sts_prefix: str  # the string to sign up to the canonical request's hash
    key: bytes
    authorization_prefix: str  # the Authorization header up to the signature
    headers: dict[str, str]  # Host, X-Amz-Date, X-Amz-Security-Token


class Signer:
    """Signs requests to one host for one service and region. ``credentials`` is read once a
    second (boto3's frozen credentials), so a Lambda's rotated role credentials are picked up;
    what does not depend on the request (date, scope, derived key, canonical headers) is
    computed once a second too."""

    def __init__(
        self,
        credentials: Callable[[], Credentials],
        region: str,
        service: str,
        host: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self.region = region
        self.service = service
        self.host = host
        self._clock = clock
        self._second: _Second | None = None

    def _current(self) -> _Second:
        second = int(self._clock())
        current = self._second
        if current is not None and current.second == second:
            return current
        creds = self._credentials()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
        day = amz_date[:8]
        signed = {"host": self.host, "x-amz-date": amz_date}
        headers = {"Host": self.host, "X-Amz-Date": amz_date}
        if creds.token:
            signed["x-amz-security-token"] = headers["X-Amz-Security-Token"] = creds.token
        names = ";".join(sorted(signed))
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        current = self._second = _Second(
            second=second,
            amz_date=amz_date,
            header_block="".join(f"{n}:{signed[n]}\n" for n in sorted(signed)) + f"\n{names}",
            sts_prefix=f"{ALGORITHM}\n{amz_date}\n{scope}\n",
            key=signing_key(creds.secret_key, day, self.region, self.service),
            authorization_prefix=f"{ALGORITHM} Credential={creds.access_key}/{scope}, "
            f"SignedHeaders={names}, Signature=",
            headers=headers,
        )
        return current

    def headers(
        self, method: str, path: str, body: bytes, body_hash: str | None = None
    ) -> dict[str, str]:
        """The headers that sign ``method path`` (path already percent-encoded, no query)
        with ``body``: Host, X-Amz-Date, X-Amz-Security-Token (session credentials) and
        Authorization. ``body_hash``: the body's SHA-256 hex, when the caller has it (a frame
        sent to many connections is hashed once)."""
        current = self._current()
        payload_hash = body_hash or hashlib.sha256(body).hexdigest()
        canonical = f"{method}\n{canonical_path(path)}\n\n{current.header_block}\n{payload_hash}"
        to_sign = current.sts_prefix + hashlib.sha256(canonical.encode()).hexdigest()
        signature = hmac.new(current.key, to_sign.encode(), hashlib.sha256).hexdigest()
        return {**current.headers, "Authorization": current.authorization_prefix + signature}
