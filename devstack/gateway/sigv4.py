"""API Gateway's AWS_IAM authorization, locally: SigV4 header signatures checked as AWS checks
them, with AWS's answers.

The signature is recomputed with botocore's own ``SigV4Auth`` (canonical request, string to
sign, signing key) from the request as received: its method, path and query, exactly the
headers it lists in SignedHeaders, its body, and its own X-Amz-Date; the two signatures are
compared in constant time. Refusals, all 403 as on AWS:

* no Authorization header: ``Missing Authentication Token``;
* an incomplete one (no Credential, SignedHeaders, Signature or date): AWS's
  "Authorization header requires ..." message;
* an access key nobody has: ``The security token included in the request is invalid.``;
* a date more than 5 minutes from now: ``Signature expired: ...`` / ``Signature not yet
  current: ...``;
* anything else that does not verify (another secret, a changed body, path, query or signed
  header, a scope for another region or service): ``The request signature we calculated does
  not match the signature you provided. ...`` with the canonical string and string to sign, as
  API Gateway answers.

The identity that signed reaches the function as ``requestContext.identity`` (userArn,
accessKey, caller, user, accountId). Only long-term keys are known here (the local operator's):
a request with a session token is refused as an unknown key.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "execute-api"
ALGORITHM = "AWS4-HMAC-SHA256"
MAX_SKEW = timedelta(minutes=5)
AMZ_DATE = "%Y%m%dT%H%M%SZ"

MSG_MISSING = "Missing Authentication Token"
MSG_UNKNOWN_KEY = "The security token included in the request is invalid."
MSG_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. Check "
    "your AWS Secret Access Key and signing method. Consult the service documentation for "
    "details."
)
_PAIR = re.compile(r"\s*([A-Za-z]+)=([^,\s]*)\s*")


@dataclass(frozen=True)
class IamUser:
    """Long-term credentials of an IAM user, and who they are."""

    access_key_id: str
    secret_access_key: str
    user_arn: str
    user_id: str  # AIDA..., API Gateway's identity.caller and identity.user
    account_id: str

    def identity(self) -> dict[str, str]:
        return {
            "userArn": self.user_arn,
            "accessKey": self.access_key_id,
            "caller": self.user_id,
            "user": self.user_id,
            "accountId": self.account_id,
        }


class SignatureRefused(Exception):
    """The request is refused; ``message`` is API Gateway's ``{"message": ...}``, and ``kind``
    the gateway response type (MISSING_AUTHENTICATION_TOKEN for an unsigned request)."""

    def __init__(self, message: str, kind: str = "INVALID_SIGNATURE") -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind


class _ExactHeaders(SigV4Auth):
    """SigV4Auth signing exactly the headers the request carries: the ones the client listed
    in SignedHeaders (botocore would leave out some, e.g. User-Agent, that another client may
    well have signed)."""

    def headers_to_sign(self, request: AWSRequest) -> Any:
        from botocore.compat import HTTPHeaders

        headers = HTTPHeaders()
        for name, value in request.headers.items():
            headers[name.lower()] = value
        return headers


def _parse_authorization(value: str) -> dict[str, str]:
    if not value.startswith(ALGORITHM + " "):
        return {}
    fields: dict[str, str] = {}
    for part in value[len(ALGORITHM) + 1 :].split(","):
        match = _PAIR.fullmatch(part)
        if match:
            fields[match.group(1)] = match.group(2)
    return fields


def _amz(moment: datetime) -> str:
    return moment.strftime(AMZ_DATE)


def verify(
    method: str,
    raw_path: str,
    header_pairs: list[tuple[str, str]],
    body: bytes,
    users: Mapping[str, IamUser],
    region: str,
    now: datetime | None = None,
) -> IamUser:
    """The user whose signature the request carries, or ``SignatureRefused``."""
    headers: dict[str, str] = {}
    for name, value in header_pairs:
        key = name.lower()
        headers[key] = f"{headers[key]},{value}" if key in headers else value
    authorization = headers.get("authorization")
    if not authorization:
        raise SignatureRefused(MSG_MISSING, "MISSING_AUTHENTICATION_TOKEN")
    fields = _parse_authorization(authorization)
    date_text = headers.get("x-amz-date", "")
    missing = [
        f"Authorization header requires '{name}' parameter."
        for name in ("Credential", "Signature", "SignedHeaders")
        if not fields.get(name)
    ]
    if not date_text:
        missing.append(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
        )
    if missing:
        raise SignatureRefused(" ".join(missing) + f" Authorization={authorization}")
    scope = fields["Credential"].split("/")
    if len(scope) != 5:
        raise SignatureRefused(
            f"Credential should be scoped to a valid region. Credential={fields['Credential']}"
        )
    access_key, scope_date, scope_region, scope_service, terminator = scope
    user = users.get(access_key)
    if user is None or "x-amz-security-token" in headers:
        raise SignatureRefused(MSG_UNKNOWN_KEY)
    try:
        signed_at = datetime.strptime(date_text, AMZ_DATE).replace(tzinfo=UTC)
    except ValueError:
        raise SignatureRefused(
            f"Date must be in ISO-8601 'basic format'. Got '{date_text}'. See "
            "http://en.wikipedia.org/wiki/ISO_8601"
        ) from None
    current = (now or datetime.now(UTC)).replace(microsecond=0)
    if signed_at < current - MAX_SKEW:
        raise SignatureRefused(
            f"Signature expired: {date_text} is now earlier than {_amz(current - MAX_SKEW)} "
            f"({_amz(current)} - 5 min.)"
        )
    if signed_at > current + MAX_SKEW:
        raise SignatureRefused(
            f"Signature not yet current: {date_text} is still later than "
            f"{_amz(current + MAX_SKEW)} ({_amz(current)} + 5 min.)"
        )
    if scope_service != SERVICE or terminator != "aws4_request":
        raise SignatureRefused(f"Credential should be scoped to correct service: '{SERVICE}'. ")
    if scope_region != region:
        raise SignatureRefused(
            f"Credential should be scoped to a valid region, not '{scope_region}'. "
        )
    if scope_date != date_text[:8]:
        raise SignatureRefused(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope_date}' != '{date_text[:8]}', from 'X-Amz-Date'."
        )
    signed_names = [n for n in fields["SignedHeaders"].lower().split(";") if n]
    if "host" not in signed_names:
        raise SignatureRefused(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization."
        )
    declared_hash = headers.get("x-amz-content-sha256")
    body_hash = hashlib.sha256(body).hexdigest()
    signer = _ExactHeaders(Credentials(access_key, user.secret_access_key), SERVICE, region)
    request = AWSRequest(
        method=method.upper(),
        url=f"http://{headers.get('host', '')}{raw_path}",
        data=body,
        headers={name: headers.get(name, "") for name in signed_names},
    )
    request.context["timestamp"] = date_text
    canonical = signer.canonical_request(request)
    string_to_sign = signer.string_to_sign(request, canonical)
    expected = signer.signature(string_to_sign, request)
    # A declared payload hash replaces the body's in the canonical request: it must be the
    # body's, or the signature would not cover what the function receives.
    body_matches = declared_hash in (None, body_hash, "UNSIGNED-PAYLOAD") and (
        declared_hash != "UNSIGNED-PAYLOAD" or not body
    )
    if not (hmac.compare_digest(expected, fields["Signature"]) and body_matches):
        raise SignatureRefused(
            f"{MSG_MISMATCH}\n\nThe Canonical String for this request should have been\n"
            f"'{canonical}'\n\nThe String-to-Sign should have been\n'{string_to_sign}'\n"
        )
    return user
