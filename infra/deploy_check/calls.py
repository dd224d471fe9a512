"""What each function's code calls on AWS, read from the code itself.

What a function "can call" is read from its code: the bourse modules its handler imports,
directly or not, and the adapters among them (ADAPTER_ACTIONS); MSK triggers add what Lambda's
event source mapping needs. The over-approximation is deliberate: a module a function imports
can be called by it, so its policy must allow it. One refinement keeps it from asking every
function for everything a shared module can do: a top-level function or class of a module is
"live" only when live code refers to it (by its name in its module, ``module.name``, or
``from module import name``), and only live code's imports count, so an import inside a
function nobody calls (``api_keys.close_key_sessions`` for all but the admin function) does not
make its modules reachable. ADAPTER_ACTIONS keys are a module (reachable) or
``module:name`` (that function or class live).

Shared by the IAM contract of ``make deploy-check`` (over SAM's output) and by
tests/unit/test_template_contract.py (over template.yaml as written).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
LAYER = REPO_ROOT / "layers" / "bourse"

# Adapter module -> (action, logical id of the resource it acts on). The logical id is what the
# policy statement's Resource (or the policy template's parameters) must refer to; nested
# stacks stand for the resources they hold (Data: Aurora, Redis; Msk: the cluster).
ADAPTER_ACTIONS: dict[str, set[tuple[str, str]]] = {
    # Reading a key: its item, and for HMAC its secret (decrypted by whoever checks requests:
    # the functions' and the authorizer's key stores).
    "bourse.adapters.api_keys": {("dynamodb:GetItem", "ApiKeysTable")},
    "bourse.adapters.api_keys:get_api_key": {("kms:Decrypt", "ApiKeySecretsKey")},
    "bourse.adapters.live_api:CachedKeyStore": {("kms:Decrypt", "ApiKeySecretsKey")},
    # The admin plane's key operations (bourse.admin through bourse.adapters.admin_bus).
    "bourse.adapters.api_keys:create_api_key": {
        ("dynamodb:PutItem", "ApiKeysTable"), ("kms:Encrypt", "ApiKeySecretsKey"),
    },
    "bourse.adapters.api_keys:list_api_keys": {("dynamodb:Query", "ApiKeysTable")},
    "bourse.adapters.key_revocation": {("dynamodb:UpdateItem", "ApiKeysTable")},
    # Admin commands are signed; only the admin function's role may (the key's policy).
    "bourse.adapters.admin_signer": {("kms:Sign", "AdminSigningKey")},
    "bourse.adapters.kafka:producer": {
        ("kafka-cluster:Connect", "Msk"), ("kafka-cluster:DescribeTopic", "Msk"),
        ("kafka-cluster:WriteData", "Msk"), ("kafka-cluster:WriteDataIdempotently", "Msk"),
    },
    "bourse.adapters.idempotency": {
        ("dynamodb:PutItem", "IdempotencyTable"), ("dynamodb:GetItem", "IdempotencyTable"),
        ("dynamodb:UpdateItem", "IdempotencyTable"),
    },
    "bourse.adapters.rate_limit_store": {
        ("dynamodb:GetItem", "RateLimitsTable"), ("dynamodb:UpdateItem", "RateLimitsTable"),
    },
    # TransactWriteItems is authorised per item: Put, Update, Delete and ConditionCheck.
    # The broadcaster only reads (ListenKeyValidity); the store writes.
    "bourse.adapters.listen_keys": {("dynamodb:GetItem", "ListenKeysTable")},
    "bourse.adapters.listen_keys:ListenKeys": {
        ("dynamodb:GetItem", "ListenKeysTable"), ("dynamodb:PutItem", "ListenKeysTable"),
        ("dynamodb:UpdateItem", "ListenKeysTable"), ("dynamodb:DeleteItem", "ListenKeysTable"),
        ("dynamodb:ConditionCheckItem", "ListenKeysTable"),
    },
    "bourse.adapters.connections": {
        (action, table)
        for action in ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem",
                       "dynamodb:DeleteItem", "dynamodb:Query")
        for table in ("ConnectionsTable", "SubscriptionsTable")
    },
    "bourse.adapters.ws_push": {("execute-api:ManageConnections", "WebSocketApi")},
    "bourse.adapters.pusher_shards:ShardedPusher": {("lambda:InvokeFunction", "PusherFunction")},
    "bourse.adapters.stream_resumes:LambdaResumes": {
        ("lambda:InvokeFunction", "StreamResumeFunction"),
    },
    "bourse.adapters.postgres": {("rds-db:connect", "Data")},
    "bourse.adapters.redis_conn": {
        ("secretsmanager:GetSecretValue", "Data"), ("kms:Decrypt", "Data"),
    },
    "bourse.adapters.archive": {("s3:PutObject", "ArchiveBucket")},
    # Webhooks (docs/webhooks.md), by role: the registrations the API and the admin plane
    # write (a transaction's Put, Update and Delete are authorised per item; secrets encrypted
    # under the API keys' KMS key), what the sender reads, what the dispatcher reads and moves.
    # The accounts' own queues are AccountQueuesPolicy's (a name prefix, no logical id).
    "bourse.adapters.webhooks:Registrations": {
        ("dynamodb:GetItem", "WebhooksTable"), ("dynamodb:PutItem", "WebhooksTable"),
        ("dynamodb:UpdateItem", "WebhooksTable"), ("dynamodb:DeleteItem", "WebhooksTable"),
        ("dynamodb:Query", "WebhooksTable"), ("kms:Encrypt", "ApiKeySecretsKey"),
    },
    "bourse.adapters.webhooks:Deliveries": {
        ("dynamodb:GetItem", "WebhooksTable"), ("kms:Decrypt", "ApiKeySecretsKey"),
    },
    "bourse.adapters.webhooks:Targets": {
        ("dynamodb:GetItem", "WebhooksTable"), ("dynamodb:Scan", "WebhooksTable"),
        ("dynamodb:UpdateItem", "WebhooksTable"),
    },
    "bourse.adapters.webhook_queues:queue_url": {("sqs:GetQueueUrl", "WebhookDeliveryQueue")},
    "bourse.adapters.webhook_queues:send": {("sqs:SendMessage", "WebhookDeliveryQueue")},
    "bourse.adapters.webhook_queues:retry_later": {
        ("sqs:ChangeMessageVisibility", "WebhookDeliveryQueue"),
    },
}  # fmt: skip
# What an MSK event source mapping with IAM authentication needs from the function's role.
MSK_TRIGGER = {
    ("kafka-cluster:Connect", "Msk"), ("kafka-cluster:DescribeGroup", "Msk"),
    ("kafka-cluster:AlterGroup", "Msk"), ("kafka-cluster:DescribeTopic", "Msk"),
    ("kafka-cluster:ReadData", "Msk"), ("kafka-cluster:DescribeClusterDynamicConfiguration", "Msk"),
}  # fmt: skip
# Calls that no adapter module identifies: the topic a function publishes to, the admin client.
FUNCTION_ACTIONS: dict[str, set[tuple[str, str]]] = {
    "RecorderFunction": {
        ("sns:Publish", "TradeFillsTopic"), ("sns:Publish", "FundingTopic"),
        ("sns:Publish", "AlertsTopic"),
    },
    "SettlementFunction": {("sns:Publish", "AlertsTopic")},
    "KafkaTopicsFunction": {
        ("kafka-cluster:Connect", "Msk"), ("kafka-cluster:CreateTopic", "Msk"),
        ("kafka-cluster:DescribeTopic", "Msk"),
    },
}  # fmt: skip
# Modules (or ``module:name``) a function imports without calling what makes them an AWS
# client, and why.
WEBHOOK_ROUTES_ELSEWHERE = (
    "the webhook routes are the account function's (routes.ACCOUNT); routes.py imports every "
    "route's handler"
)
NOT_CALLED: dict[str, dict[str, str]] = {
    "AuthorizerFunction": {
        "bourse.adapters.kafka": "live_api is imported for authorizer_keys only: no producer",
        "bourse.adapters.idempotency": "live_api is imported for authorizer_keys only",
        "bourse.adapters.rate_limit_store": "live_api is imported for authorizer_keys only",
        "bourse.adapters.listen_keys": "live_api is imported for authorizer_keys only",
        "bourse.adapters.listen_key_streams": "live_api is imported for authorizer_keys only",
        "bourse.adapters.connections": "live_api is imported for authorizer_keys only",
        "bourse.adapters.ws_push": "live_api is imported for authorizer_keys only",
        "bourse.adapters.postgres": "live_api is imported for authorizer_keys only",
        "bourse.adapters.redis_conn": "live_api is imported for authorizer_keys only",
    },
    "MarketDataFunction": {
        "bourse.adapters.kafka": "market_deps builds no producer (a bus that is never used)",
        "bourse.adapters.idempotency": "market_deps has no idempotency store",
        "bourse.adapters.listen_keys": "market_deps has no listen keys",
        "bourse.adapters.listen_key_streams": "market_deps has no listen keys",
        "bourse.adapters.connections": "market_deps has no listen keys (whose streams close)",
        "bourse.adapters.ws_push": "market_deps has no listen keys (whose streams close)",
        "bourse.adapters.api_keys": "no market-data route takes an API key (routes.MARKET_DATA)",
        "bourse.adapters.live_api:CachedKeyStore": "market_deps makes a key store that no "
        "market-data route asks for a key",
        "bourse.adapters.webhooks:Registrations": WEBHOOK_ROUTES_ELSEWHERE,
    },
    "OrdersFunction": {
        "bourse.adapters.listen_keys": "live_api.deps makes the store; no order route uses it",
        "bourse.adapters.listen_key_streams": "no order route closes a listen key",
        "bourse.adapters.connections": "no order route closes a listen key (ending its streams)",
        "bourse.adapters.ws_push": "no order route closes a listen key (ending its streams)",
        "bourse.adapters.postgres": "the record is opened by its first read; no order route "
        "reads it (GET /api/v3/order is the account function's)",
        "bourse.adapters.webhooks:Registrations": WEBHOOK_ROUTES_ELSEWHERE,
    },
    "WsApiFunction": {
        "bourse.adapters.webhooks:Registrations": "the WebSocket API has no webhook method; "
        "it imports routes.py for the REST handlers it maps",
    },
    "WsConnectionFunction": {
        "bourse.adapters.webhooks:Registrations": "$connect and the stream methods only; the "
        "WebSocket API's method table (bourse.ws.api, via routes.py) is imported for its names",
    },
    "AccountFunction": {
        "bourse.adapters.idempotency": "live_api imports it for deps; account_deps has none",
    },
}
# The module that opens Redis with the AUTH token (bourse.adapters.redis_conn.connect); any
# other live code that builds a redis client itself connects without it.
REDIS_FACTORY = "bourse.adapters.redis_conn"
REDIS_CONSTRUCTORS = {"Redis", "StrictRedis", "from_url", "RedisCluster", "ConnectionPool"}


def module_path(name: str) -> Path | None:
    base = LAYER.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


Symbol = tuple[str, str]  # (module, top-level name)


class Module:
    """A module's top-level functions and classes (each with its body), and its other
    top-level code (which runs at import)."""

    def __init__(self, name: str, path: Path) -> None:
        self.name = name
        tree = ast.parse(path.read_text())
        self.symbols: dict[str, ast.AST] = {}
        self.module_code: list[ast.AST] = []
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                self.symbols[node.name] = node
            else:
                self.module_code.append(node)
        # local name -> module, or -> (module, symbol), from every import in the file
        self.module_aliases: dict[str, str] = {}
        self.symbol_aliases: dict[str, Symbol] = {}
        for found in ast.walk(tree):
            if isinstance(found, ast.Import):
                for alias in found.names:
                    self.module_aliases[alias.asname or alias.name.split(".")[0]] = alias.name
            elif isinstance(found, ast.ImportFrom) and found.module and found.level == 0:
                for alias in found.names:
                    local = alias.asname or alias.name
                    full = f"{found.module}.{alias.name}"
                    if module_path(full) is not None:
                        self.module_aliases[local] = full
                    else:
                        self.symbol_aliases[local] = (found.module, alias.name)

    def imports(self, nodes: list[ast.AST]) -> set[str]:
        """bourse modules these nodes import (the module itself for ``from m import f``)."""
        found: set[str] = set()
        for root in nodes:
            for node in ast.walk(root):
                if isinstance(node, ast.Import):
                    found |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module)
                    found |= {f"{node.module}.{alias.name}" for alias in node.names}
        return {n for n in found if n.split(".")[0] == "bourse" and module_path(n)}

    def references(self, nodes: list[ast.AST]) -> set[Symbol]:
        """Top-level symbols (of this or other modules) these nodes refer to."""
        found: set[Symbol] = set()
        for root in nodes:
            for node in ast.walk(root):
                if isinstance(node, ast.Name):
                    if node.id in self.symbols:
                        found.add((self.name, node.id))
                    elif node.id in self.symbol_aliases:
                        found.add(self.symbol_aliases[node.id])
                elif (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id in self.module_aliases
                ):
                    found.add((self.module_aliases[node.value.id], node.attr))
                elif isinstance(node, ast.ImportFrom) and node.module:
                    found |= {(node.module, alias.name) for alias in node.names}
        return found

    def redis_clients(self, nodes: list[ast.AST]) -> bool:
        """Whether these nodes build a redis client (``redis.Redis(...)``,
        ``redis.Redis.from_url(...)``, ``from redis import Redis; Redis(...)``)."""
        redis_names = {local for local, full in self.module_aliases.items() if full == "redis"}
        # ``import redis`` inside a function body also binds the name
        redis_names.add("redis")
        direct = {
            local for local, (module, name) in self.symbol_aliases.items()
            if module.split(".")[0] == "redis" and name in REDIS_CONSTRUCTORS
        }  # fmt: skip
        for root in nodes:
            for node in ast.walk(root):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                chain: list[str] = []
                while isinstance(func, ast.Attribute):
                    chain.append(func.attr)
                    func = func.value
                if not isinstance(func, ast.Name):
                    continue
                if func.id in redis_names and set(chain) & REDIS_CONSTRUCTORS:
                    return True
                if func.id in direct:
                    return True
        return False


@cache
def load_module(name: str, path: Path) -> Module:
    return Module(name, path)


@cache
def liveness(app: Path) -> tuple[frozenset[str], frozenset[Symbol]]:
    """The bourse modules the function's code can import and the top-level functions and
    classes it can call, from its handler module onwards (see the module docstring)."""
    modules: set[str] = set()
    live: set[Symbol] = set()
    todo_modules = [("__app__", app)]
    todo_symbols: list[Symbol] = []
    loaded: dict[str, Module] = {}
    while todo_modules or todo_symbols:
        while todo_modules:
            module_name, path = todo_modules.pop()
            module = loaded[module_name] = load_module(module_name, path)
            code = module.module_code
            for ref in module.references(code):
                if ref not in live:
                    live.add(ref)
                    todo_symbols.append(ref)
            for imported in module.imports(code) - modules:
                modules.add(imported)
                todo_modules.append((imported, _path(imported)))
        deferred: list[Symbol] = []
        while todo_symbols:
            owner, symbol = todo_symbols.pop()
            holder = loaded.get(owner)
            if holder is None and owner in modules:
                deferred.append((owner, symbol))  # its module loads in the next round
                continue
            if holder is None or symbol not in holder.symbols:
                continue
            body = [holder.symbols[symbol]]
            for ref in holder.references(body):
                if ref not in live:
                    live.add(ref)
                    todo_symbols.append(ref)
            for imported in holder.imports(body) - modules:
                modules.add(imported)
                todo_modules.append((imported, _path(imported)))
        todo_symbols = deferred
    return frozenset(modules), frozenset(live)


def _path(module: str) -> Path:
    path = module_path(module)
    assert path is not None, module  # imports() keeps only modules with a file
    return path


def reachable(app: Path) -> frozenset[str]:
    """bourse modules the function's live code imports, transitively."""
    return liveness(app)[0]


@cache
def direct_redis_clients(app: Path) -> frozenset[str]:
    """Modules (``__app__`` for the handler's own) whose live code builds a redis client
    itself rather than through REDIS_FACTORY: such a client has no AUTH token."""
    modules, live = liveness(app)
    found: set[str] = set()
    for name in ("__app__", *sorted(modules)):
        if name == REDIS_FACTORY:
            continue
        if name == "__app__":
            module = load_module(name, app)
            nodes = [*module.module_code, *module.symbols.values()]
        else:
            module = load_module(name, _path(name))
            nodes = [*module.module_code] + [
                module.symbols[symbol]
                for owner, symbol in live
                if owner == name and symbol in module.symbols
            ]
        if module.redis_clients(nodes):
            found.add(name)
    return frozenset(found)


def opens_redis(app: Path) -> bool:
    """Whether the function's live code opens a Redis client (through the factory or not)."""
    _, live = liveness(app)
    via_factory = any(owner == REDIS_FACTORY for owner, _ in live)
    return via_factory or bool(direct_redis_clients(app))


def may_open_redis(name: str, app: Path) -> bool:
    """opens_redis, or the factory's module reachable (as ADAPTER_ACTIONS counts modules) and
    not declared uncalled (NOT_CALLED): what the IAM contract asks the token for."""
    uses_factory = REDIS_FACTORY in reachable(app) and REDIS_FACTORY not in NOT_CALLED.get(name, {})
    return uses_factory or opens_redis(app)


def code_dir(resource: dict[str, Any], root: Path = REPO_ROOT) -> Path:
    return root / str(resource["Properties"]["CodeUri"])


def app_path(resource: dict[str, Any], root: Path = REPO_ROOT) -> Path:
    """The handler's module file of an AWS::Serverless::Function as written."""
    module = str(resource["Properties"]["Handler"]).rsplit(".", 1)[0]
    return code_dir(resource, root) / f"{module.replace('.', '/')}.py"


def needed_actions(name: str, resource: dict[str, Any]) -> set[tuple[str, str]]:
    """(action, logical id) pairs the function's code calls (``resource`` as written in
    template.yaml: an AWS::Serverless::Function with CodeUri, Handler and Events)."""
    excluded = set(NOT_CALLED.get(name, {}))
    modules, live = liveness(app_path(resource))
    modules -= excluded
    needed = set(FUNCTION_ACTIONS.get(name, set()))
    for key, actions in ADAPTER_ACTIONS.items():
        module, _, symbol = key.partition(":")
        if module in excluded or key in excluded:
            continue
        if (module, symbol) in live if symbol else module in modules:
            needed |= actions
    events = (resource["Properties"].get("Events") or {}).values()
    if any(event.get("Type") == "MSK" for event in events):
        needed |= MSK_TRIGGER
    return needed
