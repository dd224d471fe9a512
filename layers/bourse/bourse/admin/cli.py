"""bourse-admin: operate a Bourse stack through its admin API (docs/operations.md).

    bourse-admin --local accounts create --fund BTC=10,ETH=100,USDT=1000000 --json
    bourse-admin --stack bourse-dev markets list

``--local`` talks to the local stack's gateway with its operator credentials; ``--stack NAME``
to a deployed stack (URL and region from its CloudFormation outputs, credentials from the
usual AWS chain). Every subcommand takes ``--json`` (one JSON document on stdout, for
scripts); errors go to stderr with exit status 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import urllib3
from botocore.exceptions import BotoCoreError, ClientError

from bourse.admin.client import AdminClient, AdminError, market_fields
from bourse.domain.markets import DEFAULT_MARKETS
from bourse.settings import get_settings

Handler = Callable[[AdminClient, argparse.Namespace], Any]

_MARKET_FLAGS = (
    ("base", "baseAsset"),
    ("quote", "quoteAsset"),
    ("tick_size", "tickSize"),
    ("min_price", "minPrice"),
    ("max_price", "maxPrice"),
    ("step_size", "stepSize"),
    ("min_qty", "minQty"),
    ("max_qty", "maxQty"),
    ("min_notional", "minNotional"),
    ("maker", "makerCommission"),
    ("taker", "takerCommission"),
)


def parse_funds(text: str) -> list[tuple[str, str]]:
    """``BTC=10,ETH=100`` -> [("BTC", "10"), ("ETH", "100")] (amounts stay decimal strings:
    the API parses them exactly)."""
    out: list[tuple[str, str]] = []
    for part in text.split(","):
        asset, sep, amount = part.strip().partition("=")
        if not sep or not asset or not amount:
            raise argparse.ArgumentTypeError(f"expected ASSET=AMOUNT, got {part!r}")
        out.append((asset.strip().upper(), amount.strip()))
    return out


def _read_public_key(path: str | None) -> str | None:
    return Path(path).read_text() if path else None


def _market_body(args: argparse.Namespace) -> dict[str, Any]:
    return {api: getattr(args, flag) for flag, api in _MARKET_FLAGS if getattr(args, flag, None)}


# -- handlers: each returns what --json prints


def markets_list(client: AdminClient, args: argparse.Namespace) -> Any:
    return {"markets": client.markets()}


def markets_add(client: AdminClient, args: argparse.Namespace) -> Any:
    defaults = {s.symbol: s for s in DEFAULT_MARKETS}
    body = market_fields(defaults[args.symbol]) if args.symbol in defaults else {}
    body.update(_market_body(args))
    body["symbol"] = args.symbol
    return client.add_market(body)


def markets_update(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.update_market(args.symbol, _market_body(args))


def markets_action(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.market_action(args.symbol, args.action)


def accounts_create(client: AdminClient, args: argparse.Namespace) -> Any:
    account = client.create_account(args.account_id)
    account_id = int(account["accountId"])
    out: dict[str, Any] = {"accountId": account_id, "status": account.get("status", "ACTIVE")}
    if not args.no_key:
        key = client.create_key(
            account_id,
            key_type=args.key_type,
            permissions=("READ", "TRADE"),
            label=args.label,
            public_key=_read_public_key(args.public_key),
        )
        out["apiKey"] = key["apiKey"]
        out["keyType"] = key["type"]
        if key.get("secret") is not None:
            out["secret"] = key["secret"]
    deposits = []
    for asset, amount in args.fund or ():
        tx_id = f"bourse-admin-{uuid.uuid4().hex}"
        deposits.append(client.deposit(account_id, asset, amount, tx_id))
    if deposits:
        out["deposits"] = deposits
    return out


def accounts_list(client: AdminClient, args: argparse.Namespace) -> Any:
    return {"accounts": client.accounts()}


def accounts_show(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.account(args.account_id)


def accounts_action(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.account_action(args.account_id, args.action)


def keys_create(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.create_key(
        args.account_id,
        key_type=args.type,
        permissions=[p.strip().upper() for p in args.permissions.split(",") if p.strip()],
        ip_allow_list=[ip.strip() for ip in (args.ip or "").split(",") if ip.strip()],
        label=args.label,
        public_key=_read_public_key(args.public_key),
    )


def keys_list(client: AdminClient, args: argparse.Namespace) -> Any:
    return {"keys": client.keys(args.account_id)}


def keys_revoke(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.revoke_key(args.api_key)


def keys_rotate(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.rotate_key(args.api_key, _read_public_key(args.public_key))


def funds_deposit(client: AdminClient, args: argparse.Namespace) -> Any:
    tx_id = args.tx_id or f"bourse-admin-{uuid.uuid4().hex}"
    return client.deposit(args.account_id, args.asset.upper(), args.amount, tx_id)


def funds_withdraw(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.withdraw(args.account_id, args.asset.upper(), args.amount, args.withdrawal_id)


def funds_settle(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.settle_withdrawal(args.withdrawal_id, args.action)


def funds_history(client: AdminClient, args: argparse.Namespace) -> Any:
    return {"funding": client.funding(args.account_id, args.limit)}


def fees_account(client: AdminClient, args: argparse.Namespace) -> Any:
    return client.set_account_fees(args.account_id, args.maker, args.taker)


def fees_market(client: AdminClient, args: argparse.Namespace) -> Any:
    body = {"makerCommission": args.maker, "takerCommission": args.taker}
    return client.update_market(args.symbol, body)


def fees_show(client: AdminClient, args: argparse.Namespace) -> Any:
    markets = {
        m["symbol"]: {
            "makerCommission": m["makerCommission"],
            "takerCommission": m["takerCommission"],
        }
        for m in client.markets()
    }
    out: dict[str, Any] = {"markets": markets}
    if args.account_id is not None:
        account = client.account(args.account_id)
        out["account"] = {
            "accountId": account["accountId"],
            "makerCommission": account.get("makerCommission"),
            "takerCommission": account.get("takerCommission"),
        }
    return out


# -- the parser


def _leaf(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, handler: Handler, text: str
) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=text, description=text)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=handler)
    return parser


def _market_options(parser: argparse.ArgumentParser) -> None:
    for flag, api in _MARKET_FLAGS:
        parser.add_argument("--" + flag.replace("_", "-"), dest=flag, help=api)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bourse-admin", description=__doc__.split("\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--local", action="store_true", help="the local stack (make run / make up)")
    where.add_argument("--stack", metavar="NAME", help="a deployed stack, e.g. bourse-dev")
    parser.add_argument("--region", help="the deployed stack's region (default: the AWS chain's)")
    groups = parser.add_subparsers(dest="group", required=True)

    markets = groups.add_parser("markets", help="list, add, change, halt, resume, delist")
    msub = markets.add_subparsers(dest="action_name", required=True)
    _leaf(msub, "list", markets_list, "every market with its filters, fees and status")
    add = _leaf(msub, "add", markets_add, "list a new market (a default market by name alone)")
    add.add_argument("symbol")
    _market_options(add)
    update = _leaf(msub, "update", markets_update, "change a market's filters or fees")
    update.add_argument("symbol")
    _market_options(update)
    for action, text in (
        ("halt", "stop trading (orders refused; open orders stay)"),
        ("resume", "trade again"),
        ("delist", "cancel every open order and close the market for good"),
    ):
        leaf = _leaf(msub, action, markets_action, text)
        leaf.add_argument("symbol")
        leaf.set_defaults(action=action)

    accounts = groups.add_parser("accounts", help="create, list, show, freeze, unfreeze")
    asub = accounts.add_subparsers(dest="action_name", required=True)
    create = _leaf(asub, "create", accounts_create, "a new account with an API key (trade)")
    create.add_argument("--account-id", type=int, help="a chosen id (default: the next one)")
    create.add_argument("--fund", type=parse_funds, help="deposits, e.g. BTC=10,USDT=1000")
    create.add_argument("--key-type", choices=("HMAC", "ED25519"), default="HMAC")
    create.add_argument("--public-key", help="ED25519: the PEM file of the public key")
    create.add_argument("--label", default="", help="the key's label")
    create.add_argument("--no-key", action="store_true", help="create no API key")
    _leaf(asub, "list", accounts_list, "every account and its status")
    for action, handler, text in (
        ("show", accounts_show, "balances, fees and keys of one account"),
        ("freeze", accounts_action, "no new orders (cancels still work)"),
        ("unfreeze", accounts_action, "trade again"),
    ):
        leaf = _leaf(asub, action, handler, text)
        leaf.add_argument("account_id", type=int)
        leaf.set_defaults(action=action)

    keys = groups.add_parser("keys", help="create, list, revoke, rotate API keys")
    ksub = keys.add_subparsers(dest="action_name", required=True)
    kcreate = _leaf(ksub, "create", keys_create, "a new API key for an account")
    kcreate.add_argument("account_id", type=int)
    kcreate.add_argument("--type", choices=("HMAC", "ED25519"), default="HMAC")
    kcreate.add_argument("--public-key", help="ED25519: the PEM file of the public key")
    kcreate.add_argument("--permissions", default="READ,TRADE", help="READ and/or TRADE")
    kcreate.add_argument("--ip", help="IP allow-list: addresses or CIDR blocks, comma-separated")
    kcreate.add_argument("--label", default="")
    klist = _leaf(ksub, "list", keys_list, "an account's keys (never their secrets)")
    klist.add_argument("account_id", type=int)
    krevoke = _leaf(ksub, "revoke", keys_revoke, "stop a key at once, close its streams")
    krevoke.add_argument("api_key")
    krotate = _leaf(ksub, "rotate", keys_rotate, "a new key with the same settings; old revoked")
    krotate.add_argument("api_key")
    krotate.add_argument("--public-key", help="ED25519: the new public key's PEM file")

    funds = groups.add_parser("funds", help="deposits, withdrawals, funding history")
    fsub = funds.add_subparsers(dest="action_name", required=True)
    dep = _leaf(fsub, "deposit", funds_deposit, "credit a deposit (idempotent by --tx-id)")
    dep.add_argument("account_id", type=int)
    dep.add_argument("asset")
    dep.add_argument("amount")
    dep.add_argument("--tx-id", help="the external transaction id (default: a new one)")
    wd = _leaf(fsub, "withdraw", funds_withdraw, "request a withdrawal (funds locked)")
    wd.add_argument("account_id", type=int)
    wd.add_argument("asset")
    wd.add_argument("amount")
    wd.add_argument("--withdrawal-id", help="default: a new one")
    for action, text in (
        ("complete", "the withdrawal was paid out (locked funds debited)"),
        ("fail", "the payout failed (funds unlocked)"),
        ("cancel", "cancel the request (funds unlocked)"),
    ):
        leaf = _leaf(fsub, action, funds_settle, text)
        leaf.add_argument("withdrawal_id")
        leaf.set_defaults(action=action)
    hist = _leaf(fsub, "history", funds_history, "deposits and withdrawals, newest first")
    hist.add_argument("--account-id", type=int)
    hist.add_argument("--limit", type=int, default=100)

    fees = groups.add_parser("fees", help="commission rates of accounts and markets")
    esub = fees.add_subparsers(dest="action_name", required=True)
    facc = _leaf(esub, "account", fees_account, "an account's own rates (override markets')")
    facc.add_argument("account_id", type=int)
    facc.add_argument("--maker", required=True, help="e.g. 0.001 for 0.1%%")
    facc.add_argument("--taker", required=True)
    fmkt = _leaf(esub, "market", fees_market, "a market's rates")
    fmkt.add_argument("symbol")
    fmkt.add_argument("--maker", required=True)
    fmkt.add_argument("--taker", required=True)
    fshow = _leaf(esub, "show", fees_show, "the markets' rates and an account's override")
    fshow.add_argument("--account-id", type=int)
    return parser


def _human(value: Any, indent: str = "") -> list[str]:
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{indent}{key}:")
                lines.extend(_human(item, indent + "  "))
            else:
                lines.append(f"{indent}{key}: {item}")
        return lines
    if isinstance(value, list):
        lines = []
        for item in value:
            if isinstance(item, dict):
                lines.append(indent + "- " + ", ".join(f"{k}={v}" for k, v in item.items()))
            else:
                lines.append(f"{indent}- {item}")
        return lines
    return [f"{indent}{value}"]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.local:
            client = AdminClient.local(get_settings())
        else:
            client = AdminClient.for_stack(args.stack, args.region)
        result = args.handler(client, args)
    except AdminError as exc:
        print(f"bourse-admin: {exc}", file=sys.stderr)
        return 1
    except (urllib3.exceptions.HTTPError, BotoCoreError, ClientError) as exc:
        print(f"bourse-admin: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        print("\n".join(_human(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
