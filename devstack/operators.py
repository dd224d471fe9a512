"""The local stack's operator: the IAM user whose SigV4 signatures the local gateway accepts on
the admin API (AWS_IAM), as an operator with AdminOperatorPolicy on AWS.

``.devstack/operator-credentials.json`` (mode 0600): ``accessKeyId`` (``AKIA`` + 16, AWS's
shape), ``secretAccessKey`` (40 characters) and ``userArn``
(``arn:aws:iam::<local account>:user/bourse-local-operator``). Made once, on the first ``up``
(or the first reader), and kept across runs: scripts and shells keep working after a restart.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import string
from pathlib import Path
from typing import Any

from bourse.settings import Settings
from devstack.cfn import LOCAL_ACCOUNT_ID
from devstack.gateway.sigv4 import IamUser
from devstack.paths import StackPaths

FILE_NAME = "operator-credentials.json"
USER_NAME = "bourse-local-operator"
_KEY_ALPHABET = string.ascii_uppercase + "234567"  # AWS access key ids: base32 letters
_SECRET_ALPHABET = string.ascii_letters + string.digits + "+/"


def credentials_path(settings: Settings) -> Path:
    return StackPaths.from_settings(settings).root / FILE_NAME


def _new_credentials() -> dict[str, str]:
    return {
        "accessKeyId": "AKIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)),
        "secretAccessKey": "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(40)),
        "userArn": f"arn:aws:iam::{LOCAL_ACCOUNT_ID}:user/{USER_NAME}",
    }


def ensure_operator_credentials(settings: Settings) -> bool:
    """Writes the file if there is none (never replaces one); True when it was written now."""
    path = credentials_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting together cannot both write; 0600 from the start.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as handle:
        json.dump(_new_credentials(), handle, indent=2)
        handle.write("\n")
    return True


def operator_credentials(settings: Settings) -> dict[str, str]:
    """``{"accessKeyId", "secretAccessKey", "userArn"}`` of the local operator (made if
    missing)."""
    ensure_operator_credentials(settings)
    loaded: dict[str, Any] = json.loads(credentials_path(settings).read_text())
    return {k: str(loaded[k]) for k in ("accessKeyId", "secretAccessKey", "userArn")}


def _user_id(access_key_id: str) -> str:
    """A stable IAM unique id (``AIDA`` + 17) for the user: API Gateway's identity.caller."""
    digest = base64.b32encode(hashlib.sha256(access_key_id.encode()).digest()).decode()
    return "AIDA" + digest[:17]


def operator_user(settings: Settings) -> IamUser:
    """The operator as the gateway's SigV4 check knows it."""
    saved = operator_credentials(settings)
    return IamUser(
        access_key_id=saved["accessKeyId"],
        secret_access_key=saved["secretAccessKey"],
        user_arn=saved["userArn"],
        user_id=_user_id(saved["accessKeyId"]),
        account_id=LOCAL_ACCOUNT_ID,
    )
