"""A client of the admin API (docs/admin-api.md): SigV4-signed HTTPS, as API Gateway's AWS_IAM
authorization requires, for `bourse-admin`, `make run`'s seeding and the tests.

Signing is botocore's ``SigV4Auth`` (service ``execute-api``): the same signer the AWS CLI uses,
so the local gateway's check and API Gateway's see the same requests. Credentials come from
the usual AWS chain for a deployed stack (``for_stack``) and from the local stack's operator
file for ``local``: the local gateway refuses anything else, as AWS would.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import boto3
import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bourse.admin.parsing import market_json
from bourse.domain.symbols import SymbolSpec
from bourse.settings import Settings

OPERATOR_CREDENTIALS_FILE = "operator-credentials.json"


class AdminError(Exception):
    """The admin API refused: HTTP status, Binance-style code (0 when the gateway answered with
    AWS's own ``{"message": ...}``) and message."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(f"HTTP {status}: {code} {msg}" if code else f"HTTP {status}: {msg}")
        self.status = status
        self.code = code
        self.msg = msg


@dataclass(frozen=True)
class Endpoint:
    base_url: str  # ends with the stage on AWS (https://<id>.execute-api.<region>.../<stage>)
    region: str


def _stack_dir(settings: Settings) -> Path:
    """The local stack's folder; a relative one is the checkout's, as devstack resolves it, so
    `bourse-admin --local` works from any directory of the checkout."""
    path = Path(settings.stack_dir)
    checkout = Path(__file__).resolve().parents[4]
    if not path.is_absolute() and (checkout / "template.yaml").exists():
        return checkout / path
    return path


def local_operator_credentials(settings: Settings) -> Credentials:
    """The local stack's operator: what `make up` wrote (devstack/operators.py)."""
    path = _stack_dir(settings) / OPERATOR_CREDENTIALS_FILE
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        raise AdminError(0, 0, f"{path} not found: start the local stack (make up)") from None
    return Credentials(saved["accessKeyId"], saved["secretAccessKey"])


def stack_endpoint(stack_name: str, region: str | None = None) -> Endpoint:
    """The admin API of a deployed stack, from its CloudFormation outputs."""
    cfn = boto3.client("cloudformation", region_name=region)
    stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}
    if "AdminApiUrl" not in outputs:
        raise AdminError(0, 0, f"stack {stack_name} has no AdminApiUrl output")
    return Endpoint(outputs["AdminApiUrl"].rstrip("/"), cfn.meta.region_name)


class AdminClient:
    def __init__(self, endpoint: Endpoint, credentials: Credentials, timeout_s: float = 30) -> None:
        self.endpoint = endpoint
        self.credentials = credentials
        self.http = urllib3.PoolManager(
            timeout=urllib3.Timeout(total=timeout_s), retries=urllib3.Retry(total=0)
        )

    @classmethod
    def local(cls, settings: Settings) -> AdminClient:
        return cls(
            Endpoint(settings.gateway_url, settings.region), local_operator_credentials(settings)
        )

    @classmethod
    def for_stack(cls, stack_name: str, region: str | None = None) -> AdminClient:
        endpoint = stack_endpoint(stack_name, region)
        session = boto3.Session(region_name=endpoint.region)
        credentials = session.get_credentials()
        if credentials is None:
            raise AdminError(0, 0, "no AWS credentials found (the usual AWS chain)")
        return cls(endpoint, credentials.get_frozen_credentials())  # type: ignore[arg-type]

    # -- the wire

    def request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> Any:
        url = self.endpoint.base_url + path
        query = {k: str(v) for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urlencode(query)
        data = json.dumps(body).encode() if body is not None else b""
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = AWSRequest(method=method, url=url, data=data, headers=headers)
        SigV4Auth(self.credentials, "execute-api", self.endpoint.region).add_auth(request)
        response = self.http.request(
            method, url, body=data or None, headers=dict(request.headers.items())
        )
        text = response.data.decode() if response.data else ""
        try:
            payload = json.loads(text) if text else {}
        except ValueError:
            payload = {"message": text}
        if response.status >= 400:
            if isinstance(payload, dict) and "code" in payload:
                raise AdminError(response.status, int(payload["code"]), str(payload.get("msg")))
            message = payload.get("message") if isinstance(payload, dict) else text
            raise AdminError(response.status, 0, str(message))
        return payload

    # -- markets

    def markets(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/admin/markets")["markets"])

    def add_market(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", "/admin/markets", fields))

    def update_market(self, symbol: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/admin/markets/{_seg(symbol)}", fields))

    def market_action(self, symbol: str, action: str) -> dict[str, Any]:
        """``action``: halt, resume or delist."""
        return dict(self.request("POST", f"/admin/markets/{_seg(symbol)}/{action}", {}))

    # -- accounts and keys

    def create_account(self, account_id: int | None = None) -> dict[str, Any]:
        body = {} if account_id is None else {"accountId": account_id}
        return dict(self.request("POST", "/admin/accounts", body))

    def accounts(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/admin/accounts")["accounts"])

    def account(self, account_id: int) -> dict[str, Any]:
        return dict(self.request("GET", f"/admin/accounts/{account_id}"))

    def account_action(self, account_id: int, action: str) -> dict[str, Any]:
        """``action``: freeze or unfreeze."""
        return dict(self.request("POST", f"/admin/accounts/{account_id}/{action}", {}))

    def set_account_fees(self, account_id: int, maker: str, taker: str) -> dict[str, Any]:
        body = {"makerCommission": maker, "takerCommission": taker}
        return dict(self.request("PUT", f"/admin/accounts/{account_id}/fees", body))

    def create_key(
        self,
        account_id: int,
        *,
        key_type: str = "HMAC",
        permissions: Iterable[str] = ("READ", "TRADE"),
        ip_allow_list: Iterable[str] = (),
        label: str = "",
        public_key: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": key_type,
            "permissions": list(permissions),
            "ipAllowList": list(ip_allow_list),
            "label": label,
        }
        if public_key is not None:
            body["publicKey"] = public_key
        return dict(self.request("POST", f"/admin/accounts/{account_id}/keys", body))

    def keys(self, account_id: int) -> list[dict[str, Any]]:
        return list(self.request("GET", f"/admin/accounts/{account_id}/keys")["keys"])

    def revoke_key(self, api_key: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/admin/keys/{_seg(api_key)}"))

    def rotate_key(self, api_key: str, public_key: str | None = None) -> dict[str, Any]:
        body = {} if public_key is None else {"publicKey": public_key}
        return dict(self.request("POST", f"/admin/keys/{_seg(api_key)}/rotate", body))

    # -- funding

    def deposit(self, account_id: int, asset: str, amount: str, tx_id: str) -> dict[str, Any]:
        body = {"accountId": account_id, "asset": asset, "amount": amount, "txId": tx_id}
        return dict(self.request("POST", "/admin/deposits", body))

    def withdraw(
        self, account_id: int, asset: str, amount: str, withdrawal_id: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"accountId": account_id, "asset": asset, "amount": amount}
        if withdrawal_id is not None:
            body["withdrawalId"] = withdrawal_id
        return dict(self.request("POST", "/admin/withdrawals", body))

    def settle_withdrawal(self, withdrawal_id: str, action: str) -> dict[str, Any]:
        """``action``: complete, fail or cancel."""
        path = f"/admin/withdrawals/{_seg(withdrawal_id)}/{action}"
        return dict(self.request("POST", path, {}))

    def funding(self, account_id: int | None = None, limit: int = 100) -> list[dict[str, Any]]:
        params = {"accountId": account_id, "limit": limit}
        return list(self.request("GET", "/admin/funding", params=params)["funding"])


def _seg(value: str) -> str:
    return quote(value, safe="")


def market_fields(spec: SymbolSpec) -> dict[str, Any]:
    """A SymbolSpec as the body of ``POST /admin/markets``: the API's own market shape, less
    the status (a new market trades)."""
    return {k: v for k, v in market_json(spec).items() if k != "status"}
