"""Who is calling: the API Gateway REQUEST authorizer, and the checks a SIGNED endpoint runs.

The authorizer runs before the function and sees headers and the source address, never the
body; it maps ``X-MBX-APIKEY`` to the account (principal) and its permissions (context), and
enforces the key's IP allow-list. API Gateway caches its answer per identity source (the key
and the source IP, so an allow-list decision is never reused for another address).

The function then verifies the signature over query + body (HMAC with the key's secret, or
Ed25519 with its public key: ``bourse.api.signing``) and the timestamp window, and the
permission the endpoint needs.

Revocation: API Gateway keeps the authorizer's Allow for minutes, so the authorizer cannot be
where a revoked key stops. Every endpoint that takes a key reads it from the function's
``KeyStore`` on every request (SIGNED: ``signed_params``; USER_STREAM: ``live_key``; the
WebSocket API likewise), and the live store answers None for a revoked key at once
(``bourse.adapters.live_api.CachedKeyStore``): -2015.

Whose key acts. API Gateway caches the authorizer's answer per identity source (the one
``X-MBX-APIKEY`` value it takes from the request, and the address) and hands the cached context
to the function, which reads the key again from the event's headers. If the two could differ, a
request carrying two keys (one's own, signed with one's own secret, and a victim's) would act as
the victim. So:

* the key header must appear exactly once, in any spelling: two lines, or two spellings
  (``X-MBX-APIKEY`` and ``x-mbx-apikey`` are two names in API Gateway's ``headers``, which keeps
  the client's spelling and, per name, only the last value; ``multiValueHeaders`` has them all)
  are refused with -2014, by the authorizer and by the function alike (HTTP reads repeated
  lines as one comma-joined value, RFC 9110, which is no key: API-key format invalid);
* the authorizer's context names the key it answered for (``apiKeyDigest``, the key's
  SHA-256: the context reaches access logs and traces, the key need not), and the function
  refuses with -2015 a key that is not that one, or that does not belong to the context's
  account (``live_key``, on every request: also for an answer cached before the digest existed).

Failures use Binance's codes: a missing or malformed key is -2014 (API Gateway's UNAUTHORIZED
response, customised in template.yaml), an unknown key, a refused IP or a missing permission
-2015 (ACCESS_DENIED, likewise); both with HTTP 401 as Binance answers.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from bourse.adapters.api_keys import ApiKey
from bourse.api.params import Params, parse_params
from bourse.api.ports import KeyStore
from bourse.api.signing import check_timestamp, split_signature, verify_signature
from bourse.domain import errors
from bourse.domain.errors import BinanceError

API_KEY_HEADER = "x-mbx-apikey"
API_KEY_RE = re.compile(r"\A[A-Za-z0-9]{1,128}\Z")

BAD_API_KEY_FORMAT = BinanceError(errors.BAD_API_KEY_FMT, "API-key format invalid.", 401)
REJECTED_API_KEY = BinanceError(
    errors.REJECTED_MBX_KEY, "Invalid API-key, IP, or permissions for action.", 401
)


class Unauthorized(Exception):
    """Raised by the authorizer with the exact message API Gateway expects for a 401."""

    def __init__(self) -> None:
        super().__init__("Unauthorized")


@dataclass(frozen=True)
class Caller:
    account_id: int
    permissions: frozenset[str]
    api_key: str


def header_values(event: dict[str, Any], name: str) -> list[str]:
    """Every value sent for header ``name`` (any spelling): ``multiValueHeaders`` has them all;
    ``headers`` one per spelling (the last), so it is read only for spellings the other lacks
    (an event built by hand may have only ``headers``)."""
    values: list[str] = []
    seen: set[str] = set()
    for key, items in (event.get("multiValueHeaders") or {}).items():
        if str(key).lower() == name:
            seen.add(str(key))
            values.extend(str(v) for v in (items if isinstance(items, list) else [items]))
    for key, value in (event.get("headers") or {}).items():
        if str(key).lower() == name and str(key) not in seen:
            values.append(str(value))
    return values


def api_key_of(event: dict[str, Any]) -> str | None:
    """The one ``X-MBX-APIKEY`` of a request; None when there is none (or it is empty);
    -2014 when it was sent more than once or in more than one spelling."""
    values = header_values(event, API_KEY_HEADER)
    if len(values) > 1:
        raise BAD_API_KEY_FORMAT
    return values[0] if values and values[0] else None


def key_digest(api_key: str) -> str:
    """What the authorizer's context carries of the key it answered for."""
    return hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).hexdigest()


def _ip_allowed(source_ip: str, allow_list: tuple[str, ...]) -> bool:
    if not allow_list:
        return True
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    for entry in allow_list:
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _policy(principal: str, effect: str, method_arn: str) -> dict[str, Any]:
    # The policy covers every method of the stage: the answer is cached per key and IP and
    # must hold for the next endpoint the same key calls (the function checks permissions).
    parts = method_arn.split("/")
    resource = "/".join(parts[:2]) + "/*" if len(parts) >= 2 else method_arn
    return {
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": resource}],
        },
    }


def key_allows(key: ApiKey | None, source_ip: str) -> bool:
    """Whether a key (None: unknown or revoked) may be used from ``source_ip``."""
    return key is not None and _ip_allowed(source_ip, key.ip_allow_list)


def caller_of(key: ApiKey | None, source_ip: str) -> Caller:
    """The caller a key makes from ``source_ip``; -2015 as the authorizer would refuse it."""
    if key is None or not key_allows(key, source_ip):
        raise REJECTED_API_KEY
    return Caller(key.account_id, frozenset(key.permissions), key.api_key)


def authorize(event: dict[str, Any], keys: KeyStore) -> dict[str, Any]:
    """The REQUEST authorizer: Allow with the account as principal, Deny for an unknown or
    revoked key or a refused address; ``Unauthorized`` (401) for a missing or malformed key, or
    more than one (see the module's docstring)."""
    try:
        api_key = api_key_of(event)
    except BinanceError:
        raise Unauthorized from None
    if not api_key or not API_KEY_RE.match(api_key):
        raise Unauthorized
    method_arn = str(event.get("methodArn", ""))
    source_ip = str(event.get("requestContext", {}).get("identity", {}).get("sourceIp", ""))
    key = keys.get(api_key)
    if key is None or not key_allows(key, source_ip):
        return _policy("anonymous", "Deny", method_arn)
    answer = _policy(str(key.account_id), "Allow", method_arn)
    answer["context"] = {
        "accountId": key.account_id,
        "permissions": ",".join(key.permissions),
        "apiKeyDigest": key_digest(api_key),
    }
    return answer


def caller_from_event(event: dict[str, Any]) -> Caller:
    """The caller API Gateway's authorizer established (requestContext.authorizer), with the
    request's one key: -2014 for none or several, -2015 when it is not the key the
    authorizer's (possibly cached) answer was for."""
    context = (event.get("requestContext") or {}).get("authorizer") or {}
    api_key = api_key_of(event)
    try:
        account_id = int(context["accountId"])
    except (KeyError, TypeError, ValueError):
        raise REJECTED_API_KEY from None
    if not api_key:
        raise BAD_API_KEY_FORMAT
    digest = context.get("apiKeyDigest")
    # Absent only in an answer cached before the digest existed: live_key's account check
    # still holds the key to the context's account.
    if digest is not None and not hmac.compare_digest(str(digest), key_digest(api_key)):
        raise REJECTED_API_KEY
    permissions = frozenset(p for p in str(context.get("permissions", "")).split(",") if p)
    return Caller(account_id, permissions, api_key)


def live_key(caller: Caller, keys: KeyStore) -> ApiKey:
    """The caller's key as it is now, for endpoints that take a key without a signature
    (USER_STREAM): -2015 when it was revoked or deleted since the authorizer's answer, or when
    it is not a key of the account the authorizer established."""
    key = keys.get(caller.api_key)
    if key is None or key.account_id != caller.account_id:
        raise REJECTED_API_KEY
    return key


def signed_params(
    caller: Caller,
    permission: str,
    query_string: str,
    body: str,
    keys: KeyStore,
    now_ms: int,
) -> Params:
    """A SIGNED request's parameters, after the permission, signature and timing checks."""
    if permission not in caller.permissions:
        raise REJECTED_API_KEY
    params = Params(parse_params(query_string, body))
    split_signature(query_string, body)  # -1102 for a missing signature before anything else
    timestamp = params.required_int("timestamp")
    recv_window = params.optional_int("recvWindow")
    key = live_key(caller, keys)  # revoked since the authorizer's answer was cached: -2015
    verify_signature(key, query_string, body)
    check_timestamp(timestamp, recv_window, now_ms)
    return params
