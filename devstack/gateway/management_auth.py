"""Who may call the local ``@connections`` management API: as on AWS, where execute-api's
management API takes SigV4-signed calls only, every POST, GET and DELETE must carry a
signature (devstack/gateway/sigv4.py) of a known identity, or it is refused with AWS's 403.

Locally the callers are the functions (the broadcaster, key revocation) and tests, all
signing with the credentials ``bourse.settings`` gives boto3 on the local stage
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, ``testing`` by default): exactly those are
accepted, as the functions' execution role would be on AWS.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from bourse.settings import Settings
from devstack.cfn import LOCAL_ACCOUNT_ID
from devstack.gateway.sigv4 import MSG_UNKNOWN_KEY, IamUser, SignatureRefused, verify

FUNCTIONS_ROLE = "bourse-local-functions"


@dataclass(frozen=True)
class Refusal:
    """AWS's answer to a call it does not accept: status, ``x-amzn-ErrorType`` and message."""

    status: int
    error_type: str
    message: str


def function_users(settings: Settings) -> dict[str, IamUser]:
    """The identity the local functions sign as, by access key id (none off the local stage,
    where boto3 takes the role's credentials and no local gateway runs)."""
    if settings.aws_credentials is None:
        return {}
    access_key, secret = settings.aws_credentials
    digest = hashlib.sha256(access_key.encode()).hexdigest()[:17].upper()
    user = IamUser(
        access_key_id=access_key,
        secret_access_key=secret,
        user_arn=f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/{FUNCTIONS_ROLE}",
        user_id="AIDA" + digest,
        account_id=LOCAL_ACCOUNT_ID,
    )
    return {access_key: user}


def _error_type(refused: SignatureRefused) -> str:
    if refused.kind == "MISSING_AUTHENTICATION_TOKEN":
        return "MissingAuthenticationTokenException"
    if refused.message == MSG_UNKNOWN_KEY:
        return "UnrecognizedClientException"
    if refused.message.startswith("Authorization header requires"):
        return "IncompleteSignatureException"
    return "InvalidSignatureException"


def check(
    method: str,
    raw_path: str,
    header_pairs: list[tuple[str, str]],
    body: bytes,
    users: Mapping[str, IamUser],
    region: str,
) -> Refusal | None:
    """None when the call is signed by one of ``users``, else AWS's refusal."""
    try:
        verify(method, raw_path, header_pairs, body, users, region)
    except SignatureRefused as refused:
        return Refusal(403, _error_type(refused), refused.message)
    return None


def is_unsigned(header_pairs: list[tuple[str, str]]) -> bool:
    """No Authorization header: refused before its body is read."""
    return not any(name.lower() == "authorization" and value for name, value in header_pairs)
