"""API keys as an operator issues them: key shapes (moto in process), Ed25519 signatures as
Binance defines them (its documented example, python-binance unmodified against the handlers),
the IP allow-list and permissions for both key types, and revocation: a revoked key is refused
at once, though cached, on every kind of endpoint that takes a key."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import redis
import requests
from aws_lambda_powertools.utilities.typing import LambdaContext
from binance.client import Client
from binance.exceptions import BinanceAPIException
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from requests.adapters import BaseAdapter

from bourse.adapters import api_keys, aws
from bourse.adapters.api_keys import ACTIVE, REVOKED, ApiKey, KeyRevocations
from bourse.adapters.live_api import CachedKeyStore
from bourse.api import handlers as h
from bourse.api.app import build
from bourse.api.auth import API_KEY_HEADER, Caller, Unauthorized, authorize, caller_from_event
from bourse.api.routes import ACCOUNT, ORDERS
from bourse.api.signing import (
    ED25519,
    HMAC,
    ed25519_public_pem,
    sign,
    signature_valid,
    verify_signature,
)
from bourse.domain.commands import NewOrder
from bourse.domain.enums import Outcome
from bourse.domain.errors import BinanceError
from bourse.domain.events import ReplyPart
from bourse.ws import api as ws_api
from tests.unit.test_api_handlers import FakeBus, FakeView, ok_reply, result
from tests.unit.test_ws_transport import FakeStore, _event

pytestmark = pytest.mark.unit

CONTEXT = LambdaContext()  # the resolver reads nothing of the Lambda context

PRIVATE = Ed25519PrivateKey.generate()
PRIVATE_PEM = PRIVATE.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()
PUBLIC_PEM = PRIVATE.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
ED_KEY = "E" * 64
HMAC_KEY = "H" * 64
SECRET = "s" * 64
ED = ApiKey(ED_KEY, "", 7, key_type=ED25519, public_key=PUBLIC_PEM.decode())
HM = ApiKey(HMAC_KEY, SECRET, 7)


def b64sign(payload: str, key: Ed25519PrivateKey = PRIVATE) -> str:
    return base64.b64encode(key.sign(payload.encode())).decode()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


# ------------------------------------------------------------------------- Ed25519 signatures


def test_binance_documented_ed25519_example() -> None:
    """Binance's published Ed25519 key and signature (fix-api.md, Logon <A>: the only example
    whose private key the docs give; the REST and WebSocket examples use unpublished keys)."""
    private = load_pem_private_key(
        b"-----BEGIN PRIVATE KEY-----\n"
        b"MC4CAQAwBQYDK2VwBCIEIIJEYWtGBrhACmb9Dvy+qa8WEf0lQOl1s4CLIAB9m89u\n"
        b"-----END PRIVATE KEY-----\n",
        None,
    )
    assert isinstance(private, Ed25519PrivateKey)
    public = private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    key = ApiKey("k", "", 1, key_type=ED25519, public_key=public.decode())
    payload = "\x01".join(["A", "EXAMPLE", "SPOT", "1", "20240627-11:17:25.223"])
    documented = (
        "4MHXelVVcpkdwuLbl6n73HQUXUf1dse2PCgT1DYqW9w8AVZ1RACFGM+5UdlGPrQHrgtS3CvsRURC1oj73j8gCA=="
    )
    assert signature_valid(key, payload, documented)
    assert not signature_valid(key, payload.replace("EXAMPLE", "EXAMPLf"), documented)


def test_documented_sample_public_key_is_accepted() -> None:
    """The sample key of Binance's faqs/api_key_types.md is an Ed25519 PEM."""
    sample = (
        "-----BEGIN PUBLIC KEY-----\n"
        "MCowBQYDK2VwAyEAgmDRTtj2FA+wzJUIlAL9ly1eovjLBu7uXUFR+jFULmg=\n"
        "-----END PUBLIC KEY-----\n"
    )
    assert ed25519_public_pem(sample) == sample
    assert ed25519_public_pem("\n  " + sample.replace("\n", "\r\n")) == sample


@pytest.mark.parametrize(
    "pem",
    [
        "",
        "not a key",
        PRIVATE_PEM,  # the private key: never accepted as a public key
        generate_private_key(SECP256R1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        .decode(),
    ],
)
def test_only_ed25519_public_keys(pem: str) -> None:
    with pytest.raises(ValueError):
        ed25519_public_pem(pem)


QUERY = "symbol=BTCUSDT&side=SELL&type=LIMIT&timeInForce=GTC"
BODY = "quantity=1&price=0.2&recvWindow=5000&timestamp=1668481559918"


@pytest.mark.parametrize(
    ("query", "body"),
    [
        # Percent-encoded as Binance says to send it, in the query string or the body.
        (f"{QUERY}&{BODY}&signature={quote(b64sign(QUERY + '&' + BODY), safe='')}", ""),
        ("", f"{QUERY}&{BODY}&signature={quote(b64sign(QUERY + '&' + BODY), safe='')}"),
        (QUERY, f"{BODY}&signature={quote(b64sign(QUERY + BODY), safe='')}"),
        # Unencoded base64 is accepted too (a client that forgot to encode it).
        (f"{QUERY}&{BODY}&signature={b64sign(QUERY + '&' + BODY)}", ""),
    ],
)
def test_ed25519_rest_signatures(query: str, body: str) -> None:
    verify_signature(ED, query, body)


def _refused(key: ApiKey, query: str, body: str = "") -> int:
    with pytest.raises(BinanceError) as caught:
        verify_signature(key, query, body)
    return caught.value.code


def test_ed25519_rejections() -> None:
    good = b64sign(f"{QUERY}&{BODY}")
    assert _refused(ED, f"{QUERY}&{BODY.replace('0.2', '0.3')}&signature={quote(good)}") == -1022
    other = Ed25519PrivateKey.generate()
    assert _refused(ED, f"{QUERY}&{BODY}&signature={quote(b64sign(f'{QUERY}&{BODY}', other))}") == (
        -1022
    )
    assert _refused(ED, f"{QUERY}&{BODY}&signature={quote(good.lower())}") == -1022  # case
    assert _refused(ED, f"{QUERY}&{BODY}&signature=not*base64") == -1022
    assert _refused(ED, f"{QUERY}&{BODY}&signature={base64.b64encode(b'x' * 63).decode()}") == (
        -1022
    )
    assert _refused(ED, f"{QUERY}&{BODY}&signature={sign(SECRET, QUERY + '&' + BODY)}") == -1022
    assert _refused(ED, f"{QUERY}&{BODY}") == -1102
    # An HMAC key does not accept an Ed25519 signature, nor an Ed25519 key without its PEM.
    assert _refused(HM, f"{QUERY}&{BODY}&signature={quote(good)}") == -1022
    keyless = ApiKey(ED_KEY, "", 7, key_type=ED25519)
    assert _refused(keyless, f"{QUERY}&{BODY}&signature={quote(good)}") == -1022
    hmac_without_secret = ApiKey(HMAC_KEY, "", 7)
    assert _refused(hmac_without_secret, f"{QUERY}&{BODY}&signature={sign('', QUERY)}") == -1022


def test_hmac_keeps_working() -> None:
    payload = f"{QUERY}&{BODY}"
    verify_signature(HM, f"{payload}&signature={sign(SECRET, payload)}", "")
    verify_signature(SECRET, f"{payload}&signature={sign(SECRET, payload)}", "")  # a bare secret
    assert _refused(HM, f"{payload}&signature={sign('x' * 64, payload)}") == -1022


# ------------------------------------------------------------------------- issuing keys (moto)


@pytest.fixture
def key_table(monkeypatch: pytest.MonkeyPatch) -> Iterator[api_keys.ApiKeyTable]:
    """The key table in moto's in-process DynamoDB and KMS, with its by-account index."""
    from moto import mock_aws

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    with mock_aws():
        import boto3

        clients: dict[str, Any] = {
            s: boto3.client(s, region_name="us-east-1") for s in ("dynamodb", "kms")
        }
        monkeypatch.setattr(aws, "client", clients.__getitem__)
        key_id = clients["kms"].create_key()["KeyMetadata"]["KeyId"]
        clients["dynamodb"].create_table(
            TableName="keys",
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "apiKey", "AttributeType": "S"},
                                  {"AttributeName": "accountId", "AttributeType": "N"}],
            KeySchema=[{"AttributeName": "apiKey", "KeyType": "HASH"}],
            GlobalSecondaryIndexes=[{"IndexName": "by-account",
                                     "KeySchema": [{"AttributeName": "accountId",
                                                    "KeyType": "HASH"}],
                                     "Projection": {"ProjectionType": "KEYS_ONLY"}}],
        )  # fmt: skip
        yield api_keys.ApiKeyTable("keys", key_id)


def test_key_shapes(key_table: api_keys.ApiKeyTable) -> None:
    hmac_key, secret = key_table.create(7, HMAC, ("USER_DATA", "TRADE"), ("10.0.0.0/8",), "bot",
                                        None, 1_000)  # fmt: skip
    assert secret is not None and len(secret) == 64 and secret.isalnum()
    assert len(hmac_key.api_key) == 64 and hmac_key.api_key.isalnum()
    assert hmac_key == ApiKey(hmac_key.api_key, secret, 7, ("TRADE", "USER_DATA"), ("10.0.0.0/8",),
                              "bot", HMAC, None, ACTIVE, 1_000)  # fmt: skip
    assert key_table.get(hmac_key.api_key) == hmac_key  # the secret decrypted
    item = aws.client("dynamodb").get_item(
        TableName="keys", Key={"apiKey": {"S": hmac_key.api_key}})["Item"]  # fmt: skip
    assert secret not in json.dumps(item) and "secretCiphertext" in item

    ed_key, none = key_table.create(7, ED25519, ("USER_DATA",), (), "", "\n" + PUBLIC_PEM.decode(),
                                    2_000)  # fmt: skip
    assert none is None and ed_key.secret == "" and ed_key.public_key == PUBLIC_PEM.decode()
    assert (ed_key.key_type, ed_key.permissions, ed_key.status) == (ED25519, ("USER_DATA",), ACTIVE)
    assert key_table.get(ed_key.api_key) == ed_key
    key_table.create(8, HMAC, ("TRADE",), (), "other account", None, 3_000)

    listed = key_table.list(7)
    assert [k.api_key for k in listed] == [hmac_key.api_key, ed_key.api_key]
    assert all(k.secret == "" for k in listed)  # lists never decrypt
    revoked = key_table.revoke(ed_key.api_key)
    assert revoked is not None and revoked.status == REVOKED
    assert key_table.revoke(ed_key.api_key) == revoked  # idempotent
    assert key_table.revoke("Z" * 64) is None
    assert key_table.get(ed_key.api_key) is None and not key_table.is_active(ed_key.api_key)
    assert key_table.describe(ed_key.api_key) == revoked
    assert [k.status for k in key_table.list(7)] == [ACTIVE, REVOKED]
    assert key_table.is_active(hmac_key.api_key)


@pytest.mark.parametrize(
    ("key_type", "permissions", "allow", "pem"),
    [
        ("RSA", ("TRADE",), (), None),
        (HMAC, ("READ",), (), None),  # the admin API's READ is stored as USER_DATA
        (HMAC, ("TRADE",), ("10.0.0.300",), None),
        (HMAC, ("TRADE",), (), PUBLIC_PEM.decode()),
        (ED25519, ("TRADE",), (), None),
        (ED25519, ("TRADE",), (), PRIVATE_PEM),
    ],
)
def test_key_creation_refusals(key_table: api_keys.ApiKeyTable, key_type: str,
                               permissions: tuple[str, ...], allow: tuple[str, ...],
                               pem: str | None) -> None:  # fmt: skip
    with pytest.raises(ValueError):
        key_table.create(7, key_type, permissions, allow, "", pem, 1)
    assert key_table.list(7) == []


def test_legacy_items_read_as_active_hmac(key_table: api_keys.ApiKeyTable) -> None:
    """Items written before key types (the old seeding) have no keyType/status."""
    key_table.put(HM, 5)
    aws.client("dynamodb").update_item(
        TableName="keys", Key={"apiKey": {"S": HMAC_KEY}}, UpdateExpression="REMOVE keyType, #s",
        ExpressionAttributeNames={"#s": "status"})  # fmt: skip
    assert key_table.get(HMAC_KEY) == ApiKey(HMAC_KEY, SECRET, 7, created_at_ms=5)


# ------------------------------------------------------------------------- the key store


class FakeTable:
    def __init__(self, *keys: ApiKey) -> None:
        self.keys = {k.api_key: k for k in keys}
        self.loads = 0
        self.status_reads = 0

    def get(self, api_key: str, *, consistent: bool = False) -> ApiKey | None:
        assert consistent, "the store reads keys strongly consistently"
        self.loads += 1
        key = self.keys.get(api_key)
        return key if key is not None and key.status == ACTIVE else None

    def is_active(self, api_key: str) -> bool:
        self.status_reads += 1
        key = self.keys.get(api_key)
        return key is not None and key.status == ACTIVE

    def revoke(self, api_key: str) -> None:
        self.keys[api_key] = ApiKey(**{**self.keys[api_key].__dict__, "status": REVOKED})


class FakeRedis:
    """The three commands KeyRevocations uses, and an outage switch."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.down = False

    def _up(self) -> None:
        if self.down:
            raise redis.exceptions.ConnectionError("Redis is down")

    def mget(self, names: list[str]) -> list[bytes | None]:
        self._up()
        return [self.data.get(n) for n in names]

    def get(self, name: str) -> bytes | None:
        self._up()
        return self.data.get(name)

    def set(self, name: str, value: Any, nx: bool = False, ex: int | None = None) -> bool:
        self._up()
        if nx and name in self.data:
            return False
        self.data[name] = value if isinstance(value, bytes) else str(value).encode()
        return True


class Keys:
    """A function's live key store over fakes, and the admin plane's revocation."""

    def __init__(self, *keys: ApiKey) -> None:
        self.table = FakeTable(*keys)
        self.redis = FakeRedis()
        self.marks = KeyRevocations(self.redis)
        self.store = CachedKeyStore(60, self.marks, self.table)

    def revoke(self, api_key: str) -> None:
        """What key_revocation.revoke_api_key does: the item, then the marker."""
        self.table.revoke(api_key)
        self.marks.revoke(api_key)


def test_revoked_key_is_refused_at_once_though_cached() -> None:
    keys = Keys(ED, HM)
    assert keys.store.get(ED_KEY) == ED and keys.store.get(ED_KEY) == ED
    assert keys.table.loads == 1  # cached: one read, then Redis only
    keys.revoke(ED_KEY)
    assert keys.store.get(ED_KEY) is None
    assert keys.store.get(HMAC_KEY) == HM
    assert KeyRevocations.marker(ED_KEY) == "{apikeys}:revoked:" + ED_KEY


def test_lost_markers_are_caught_by_the_epoch() -> None:
    """Redis flushed after the revocation: the marker is gone, the epoch too, so every cache
    reads DynamoDB again and finds the key REVOKED."""
    keys = Keys(ED)
    assert keys.store.get(ED_KEY) == ED
    keys.revoke(ED_KEY)
    keys.redis.data.clear()
    assert keys.store.get(ED_KEY) is None
    assert keys.table.loads == 2


def test_redis_down_falls_back_to_the_status() -> None:
    keys = Keys(ED, HM)
    assert keys.store.get(ED_KEY) == ED and keys.store.get(HMAC_KEY) == HM
    keys.redis.down = True
    assert keys.store.get(HMAC_KEY) == HM and keys.table.status_reads == 1
    keys.table.revoke(ED_KEY)  # the marker cannot be written: DynamoDB says it
    assert keys.store.get(ED_KEY) is None
    assert keys.store.get("U" * 64) is None


def test_authorizer_store_without_redis_expires_entries() -> None:
    table = FakeTable(ED)
    store = CachedKeyStore(0, None, table)  # TTL 0: every get reads the table
    assert store.get(ED_KEY) == ED
    table.revoke(ED_KEY)
    assert store.get(ED_KEY) is None


# ------------------------------------------------------------------------- in-process REST


class FakeListenKeys:
    def __init__(self) -> None:
        self.live: dict[str, tuple[int, set[str]]] = {}

    def create(self, account_id: int, *, api_key: str | None = None) -> str:
        listen_key = f"{account_id:060d}"
        self.live.setdefault(listen_key, (account_id, set()))[1].add(api_key or "")
        return listen_key

    def keepalive(self, listen_key: str, account_id: int, *, api_key: str | None = None) -> bool:
        if self.live.get(listen_key, (None,))[0] != account_id:
            return False
        self.live[listen_key][1].add(api_key or "")
        return True

    def close(self, listen_key: str, account_id: int) -> bool:
        return self.live.pop(listen_key, None) is not None


def live_deps(keys: Keys, bus: FakeBus | None = None) -> h.Deps:
    filled = FakeBus(lambda c: ok_reply(c, ReplyPart(Outcome.SUCCESS, 0, "", result())))
    return h.Deps(FakeView(), bus or filled, keys.store, now_ms, lambda: "req-1",
                  listen_keys=FakeListenKeys())  # fmt: skip


class Gateway(BaseAdapter):
    """API Gateway in front of the functions, in process: the REQUEST authorizer (its context
    into the event, its Deny as the ACCESS_DENIED gateway response), then the resolver with the
    proxy event v1.0 (query parameters decoded, the body as sent)."""

    def __init__(self, deps: h.Deps, source_ip: str = "10.1.2.3") -> None:
        super().__init__()
        self.app = build(ORDERS + ACCOUNT, lambda: deps)
        self.deps = deps
        self.source_ip = source_ip

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        url = urlsplit(request.url or "")
        headers = {k: str(v) for k, v in request.headers.items()}
        identity = {"sourceIp": self.source_ip}
        try:
            policy = authorize({"headers": headers, "methodArn": "arn:x:y:z:1:api/prod/GET/x",
                                "requestContext": {"identity": identity}},
                               self.deps.keys)  # fmt: skip
        except Unauthorized:
            return self._answer(request, 401, {"code": -2014, "msg": "API-key format invalid."})
        if "context" not in policy:
            return self._answer(
                request,
                401,
                {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."},
            )
        query: dict[str, list[str]] = {}
        for name, value in parse_qsl(url.query, keep_blank_values=True):
            query.setdefault(name, []).append(value)
        body = request.body.decode() if isinstance(request.body, bytes) else request.body
        event = {"resource": url.path, "path": url.path, "httpMethod": request.method,
                 "headers": headers, "multiValueHeaders": {}, "queryStringParameters": None,
                 "multiValueQueryStringParameters": query or None,
                 "requestContext": {"requestId": "r", "identity": identity,
                                    "authorizer": policy["context"]},
                 "body": body, "isBase64Encoded": False}  # fmt: skip
        answer = self.app.resolve(event, CONTEXT)
        return self._answer(request, answer["statusCode"], json.loads(answer["body"]))

    @staticmethod
    def _answer(request: requests.PreparedRequest, status: int, body: Any) -> requests.Response:
        response = requests.Response()
        response.status_code = status
        response._content = json.dumps(body).encode()
        response.headers["Content-Type"] = "application/json"
        response.request = request
        response.url = request.url or ""
        return response

    def close(self) -> None:
        pass


def binance_client(
    deps: h.Deps,
    api_key: str,
    source_ip: str = "10.1.2.3",
    *,
    private_key: str | None = None,
    secret: str | None = None,
) -> Client:
    client = Client(api_key, secret, private_key=private_key, ping=False)
    client.API_URL = "http://bourse.test/api"
    client.session.mount("http://bourse.test", Gateway(deps, source_ip))
    return client


def test_python_binance_ed25519_unmodified() -> None:
    """python-binance signs with the private key (GET: query string; POST and DELETE: body,
    the signature percent-encoded), the handlers verify with the registered public key."""
    keys = Keys(ED)
    bus = FakeBus(lambda c: ok_reply(c, ReplyPart(Outcome.SUCCESS, 0, "", result())))
    client = binance_client(live_deps(keys, bus), ED_KEY, private_key=PRIVATE_PEM)
    placed = client.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                                 quantity="0.01", price="30000")  # fmt: skip
    assert placed["status"] == "FILLED"
    assert isinstance(bus.sent[0], NewOrder) and bus.sent[0].account_id == 7
    assert client.get_account()["accountType"] == "SPOT"
    assert client.get_open_orders(symbol="BTCUSDT") == []
    listen_key = client.stream_get_listen_key()
    assert len(listen_key) == 60
    # Someone else's private key, same API key: refused.
    other = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                       NoEncryption()).decode()  # fmt: skip
    with pytest.raises(BinanceAPIException) as caught:
        binance_client(live_deps(keys), ED_KEY, private_key=other).get_account()
    assert (caught.value.code, caught.value.status_code) == (-1022, 400)


def test_python_binance_hmac_still_works() -> None:
    keys = Keys(HM)
    client = binance_client(live_deps(keys), HMAC_KEY, secret=SECRET)
    assert client.get_account()["accountType"] == "SPOT"
    with pytest.raises(BinanceAPIException) as caught:
        binance_client(live_deps(keys), HMAC_KEY, secret="x" * 64).get_account()
    assert caught.value.code == -1022


def test_ip_allow_list_and_permissions_for_both_key_types() -> None:
    read_only_ed = ApiKey(ED_KEY, "", 7, ("USER_DATA",), ("10.0.0.0/8",), key_type=ED25519,
                          public_key=PUBLIC_PEM.decode())  # fmt: skip
    trade_only_hmac = ApiKey(HMAC_KEY, SECRET, 7, ("TRADE",), ("192.168.1.7",))
    keys = Keys(read_only_ed, trade_only_hmac)
    deps = live_deps(keys)
    ed = binance_client(deps, ED_KEY, "10.9.9.9", private_key=PRIVATE_PEM)
    assert ed.get_account()["canTrade"] is False
    with pytest.raises(BinanceAPIException) as no_trade:
        ed.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                        quantity="0.01", price="30000")  # fmt: skip
    assert (no_trade.value.code, no_trade.value.status_code) == (-2015, 401)
    with pytest.raises(BinanceAPIException) as elsewhere:
        binance_client(deps, ED_KEY, "11.0.0.1", private_key=PRIVATE_PEM).get_account()
    assert (elsewhere.value.code, elsewhere.value.status_code) == (-2015, 401)
    hm = binance_client(deps, HMAC_KEY, "192.168.1.7", secret=SECRET)
    assert hm.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.01", price="30000")["status"] == "FILLED"  # fmt: skip
    with pytest.raises(BinanceAPIException) as no_read:
        hm.get_account()
    assert no_read.value.code == -2015
    with pytest.raises(BinanceAPIException) as other_ip:
        binance_client(deps, HMAC_KEY, "192.168.1.8", secret=SECRET).get_account()
    assert other_ip.value.code == -2015
    # The WebSocket API applies the same allow-list (the connection's source address).
    store = FakeStore()
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=now_ms())
    params = ws_signed_ed({})
    assert ws_call("session.logon", params, store, deps)["result"]["apiKey"] == ED_KEY
    assert ws_call("session.logon", params, store, deps, ip="11.0.0.1")["error"]["code"] == -2015


# ------------------------------------------------------------------------- revocation, per endpoint


def _rest_event(method: str, path: str, query: str, api_key: str) -> dict[str, Any]:
    """A proxy event as API Gateway sends it once its cached Allow let the request through."""
    params: dict[str, list[str]] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        params.setdefault(name, []).append(value)
    return {"resource": path, "path": path, "httpMethod": method,
            "headers": {API_KEY_HEADER: api_key}, "multiValueHeaders": {},
            "queryStringParameters": None, "multiValueQueryStringParameters": params or None,
            "requestContext": {"requestId": "r", "identity": {"sourceIp": "10.1.2.3"},
                               "authorizer": {"accountId": 7,
                                              "permissions": "TRADE,USER_DATA"}},
            "body": None, "isBase64Encoded": False}  # fmt: skip


def _ed_query(params: dict[str, str]) -> str:
    payload = "&".join(f"{k}={v}" for k, v in {**params, "timestamp": str(now_ms())}.items())
    return f"{payload}&signature={quote(b64sign(payload), safe='')}"


REVOKED_ERROR = {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}


def test_revoked_key_refused_on_every_rest_endpoint_kind() -> None:
    """The authorizer's Allow is cached by API Gateway: the function refuses the key."""
    keys = Keys(ED)
    deps = live_deps(keys)
    app = build(ORDERS + ACCOUNT, lambda: deps)
    requests_ = [
        ("GET", "/api/v3/account", _ed_query({})),  # SIGNED, USER_DATA
        ("POST", "/api/v3/order", _ed_query({"symbol": "BTCUSDT", "side": "BUY",
                                             "type": "LIMIT", "timeInForce": "GTC",
                                             "quantity": "0.01", "price": "30000"})),
        ("POST", "/api/v3/userDataStream", ""),  # USER_STREAM
        ("PUT", "/api/v3/userDataStream", f"listenKey={'0' * 53}0000007"),
        ("DELETE", "/api/v3/userDataStream", f"listenKey={'0' * 53}0000007"),
    ]  # fmt: skip
    before = [
        app.resolve(_rest_event(m, p, q, ED_KEY), CONTEXT)["statusCode"] for m, p, q in requests_
    ]
    assert before == [200] * 5
    keys.revoke(ED_KEY)
    for method, path, query in requests_:
        answer = app.resolve(_rest_event(method, path, query, ED_KEY), CONTEXT)
        assert (answer["statusCode"], json.loads(answer["body"])) == (401, REVOKED_ERROR), path
    # And the authorizer itself denies it once it runs again.
    event = {"headers": {API_KEY_HEADER: ED_KEY}, "methodArn": "a/b/c",
             "requestContext": {"identity": {"sourceIp": "10.1.2.3"}}}  # fmt: skip
    assert authorize(event, keys.store)["policyDocument"]["Statement"][0]["Effect"] == "Deny"
    assert caller_from_event(_rest_event("GET", "/", "", ED_KEY)) == Caller(
        7, frozenset({"TRADE", "USER_DATA"}), ED_KEY)  # fmt: skip


# ------------------------------------------------------------------------- WebSocket API


def ws_signed_ed(params: dict[str, Any], key: Ed25519PrivateKey = PRIVATE,
                 api_key: str = ED_KEY) -> dict[str, Any]:  # fmt: skip
    """Binance's WebSocket API signing: sorted name=value, Ed25519, base64 (not encoded)."""
    full = {**params, "apiKey": api_key, "timestamp": now_ms()}
    text = {k: ws_api.param_text(k, v) for k, v in full.items()}
    return {**full, "signature": b64sign(ws_api.signature_payload(text), key)}


def ws_call(method: str, params: dict[str, Any] | None, store: FakeStore, deps: h.Deps,
            ip: str = "10.1.2.3") -> Any:  # fmt: skip
    request: dict[str, Any] = {"id": "r1", "method": method}
    if params is not None:
        request["params"] = params
    event = _event(method, request)
    event = type(event)(**{**event.__dict__, "source_ip": ip})
    answer = ws_api.handle(event, deps, store)
    assert answer["statusCode"] == 200
    return json.loads(answer["body"])


LIMIT = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
         "quantity": "0.01", "price": "30000"}  # fmt: skip


def test_ws_api_ed25519_signed_and_session() -> None:
    keys = Keys(ED)
    bus = FakeBus(lambda c: ok_reply(c, ReplyPart(Outcome.SUCCESS, 0, "", result())))
    deps = live_deps(keys, bus)
    store = FakeStore()
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=now_ms())
    assert ws_call("order.place", ws_signed_ed(LIMIT), store, deps)["result"]["status"] == "FILLED"
    tampered = {**ws_signed_ed(LIMIT), "price": "30001"}
    assert ws_call("order.place", tampered, store, deps)["error"]["code"] == -1022
    stranger = ws_signed_ed(LIMIT, Ed25519PrivateKey.generate())
    assert ws_call("order.place", stranger, store, deps)["error"]["code"] == -1022
    logon = ws_call("session.logon", ws_signed_ed({}), store, deps)
    assert logon["result"]["apiKey"] == ED_KEY
    placed = ws_call("order.place", {**LIMIT, "timestamp": now_ms()}, store, deps)
    orders = [c for c in bus.sent if isinstance(c, NewOrder)]
    assert placed["status"] == 200 and orders == bus.sent
    assert [c.account_id for c in orders] == [7, 7]


def test_python_binance_ws_signing_unmodified() -> None:
    """The WebSocket API params python-binance builds (its own signing code) are accepted."""
    keys = Keys(ED)
    deps = live_deps(keys)
    client = Client(ED_KEY, private_key=PRIVATE_PEM, ping=False)
    params = client._sign_ws_params({}, client._generate_ws_api_signature)
    store = FakeStore()
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=now_ms())
    assert ws_call("session.logon", params, store, deps)["result"]["apiKey"] == ED_KEY
    order = client._sign_ws_params(dict(LIMIT), client._generate_ws_api_signature)
    assert ws_call("order.place", order, store, deps)["status"] == 200


def test_revoked_key_refused_on_the_ws_api() -> None:
    keys = Keys(ED)
    deps = live_deps(keys)
    store = FakeStore()
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=now_ms())
    assert ws_call("session.logon", ws_signed_ed({}), store, deps)["status"] == 200
    assert ws_call("userDataStream.subscribe", None, store, deps)["result"] == {"subscriptionId": 0}
    assert ws_call("userDataStream.unsubscribe", None, store, deps)["result"] == {}
    keys.revoke(ED_KEY)
    # A logged-on session: its next request is refused and the session ends (Binance's rule).
    placed = ws_call("order.place", {**LIMIT, "timestamp": now_ms()}, store, deps)
    assert (placed["status"], placed["error"]) == (401, REVOKED_ERROR)
    assert ws_call("session.status", None, store, deps)["result"]["apiKey"] is None
    store.set_session("conn-1", ED_KEY, 7)
    assert ws_call("userDataStream.subscribe", None, store, deps)["error"] == REVOKED_ERROR
    for method, params in [("session.logon", ws_signed_ed({})),
                           ("userDataStream.subscribe.signature", ws_signed_ed({})),
                           ("order.place", ws_signed_ed(LIMIT)),
                           ("account.status", ws_signed_ed({}))]:  # fmt: skip
        answer = ws_call(method, params, store, deps)
        assert (answer["status"], answer["error"]) == (401, REVOKED_ERROR), method
    assert store.account_subscriptions("conn-1") == []


def test_user_data_subscriptions_record_their_key() -> None:
    """Signed or in a session, the subscription keeps the key that authorised it (revoking the
    key finds the connection through it, even after session.logout)."""
    keys = Keys(ED, HM)
    deps = live_deps(keys)
    store = FakeStore()
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=now_ms())
    answer = ws_call("userDataStream.subscribe.signature", ws_signed_ed({}), store, deps)
    assert answer["result"] == {"subscriptionId": 0}
    (subscription,) = store.account_subscriptions("conn-1")
    assert subscription.api_key == ED_KEY
    store.put_connection("conn-1", account_id=None, combined=False, expires_at=now_ms())
    store.set_session("conn-1", HMAC_KEY, 7)
    assert ws_call("userDataStream.subscribe", None, store, deps)["result"] == {"subscriptionId": 0}
    assert ws_call("session.logout", None, store, deps)["result"]["apiKey"] is None
    (subscription,) = store.account_subscriptions("conn-1")
    assert subscription.api_key == HMAC_KEY
