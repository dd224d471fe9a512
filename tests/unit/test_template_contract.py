"""template.yaml keeps its promises to the code.

- every function's handler exists and imports;
- every setting a function's code can read whose local default would be wrong on AWS is set
  in its environment (Globals or its own);
- every AWS API action its code calls is allowed by its policies (SAM policy templates are
  expanded from samtranslator's own definitions), on the resource the code uses;
- every table, bucket, topic and queue the code names (bourse.settings) is declared.

What a function "can call" is read from the code: the bourse modules its handler imports,
directly or not, and the adapters among them (ADAPTER_ACTIONS); MSK triggers add what Lambda's
event source mapping needs. The over-approximation is deliberate: a module a function imports
can be called by it, so its policy must allow it. One refinement keeps it from asking every
function for everything a shared module can do: a top-level function or class of a module is
"live" only when live code refers to it (by its name in its module, ``module.name``, or
``from module import name``), and only live code's imports count, so an import inside a
function nobody calls (``api_keys.close_key_sessions`` for all but the admin function) does not
make its modules reachable. ADAPTER_ACTIONS keys are a module (reachable) or
``module:name`` (that function or class live).
"""

from __future__ import annotations

import ast
import fnmatch
import json
import os
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from devstack.cfn import load_template, references
from devstack.paths import REPO_ROOT

pytestmark = pytest.mark.unit

LAYER = REPO_ROOT / "layers" / "bourse"
SETTINGS_PY = LAYER / "bourse" / "settings.py"
POLICY_TEMPLATES = next(
    iter((REPO_ROOT / ".tools" / "sam" / "lib").glob(
        "python3*/site-packages/samtranslator/policy_templates_data/policy_templates.json"
    )),
    None,
)  # fmt: skip

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
    "bourse.adapters.listen_keys": {
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
    "bourse.adapters.postgres": {("rds-db:connect", "Data")},
    "bourse.adapters.redis_conn": {
        ("secretsmanager:GetSecretValue", "Data"), ("kms:Decrypt", "Data"),
    },
    "bourse.adapters.archive": {("s3:PutObject", "ArchiveBucket")},
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
NOT_CALLED: dict[str, dict[str, str]] = {
    "AuthorizerFunction": {
        "bourse.adapters.kafka": "live_api is imported for authorizer_keys only: no producer",
        "bourse.adapters.idempotency": "live_api is imported for authorizer_keys only",
        "bourse.adapters.rate_limit_store": "live_api is imported for authorizer_keys only",
        "bourse.adapters.listen_keys": "live_api is imported for authorizer_keys only",
        "bourse.adapters.postgres": "live_api is imported for authorizer_keys only",
        "bourse.adapters.redis_conn": "live_api is imported for authorizer_keys only",
    },
    "MarketDataFunction": {
        "bourse.adapters.kafka": "market_deps builds no producer (a bus that is never used)",
        "bourse.adapters.idempotency": "market_deps has no idempotency store",
        "bourse.adapters.listen_keys": "market_deps has no listen keys",
        "bourse.adapters.api_keys": "no market-data route takes an API key (routes.MARKET_DATA)",
        "bourse.adapters.live_api:CachedKeyStore": "market_deps makes a key store that no "
        "market-data route asks for a key",
    },
    "OrdersFunction": {
        "bourse.adapters.listen_keys": "live_api.deps makes the store; no order route uses it",
        "bourse.adapters.postgres": "the record is opened by its first read; no order route "
        "reads it (GET /api/v3/order is the account function's)",
    },
    "AccountFunction": {
        "bourse.adapters.idempotency": "live_api imports it for deps; account_deps has none",
    },
}

# Settings whose defaults are right on AWS too (tuning) or that only the local stack reads.
DEFAULTS_HOLD_ON_AWS = {
    "region",  # AWS_REGION is set by Lambda itself
    "aws_endpoint_url", "aws_credentials",  # empty off the local stage
    "commands_topic", "events_topic", "marketdata_topic",  # same names on MSK (kafka_topics.py)
    "stack_dir", "kafka_controller_port", "moto_port", "gateway_port",
    "gateway_ws_idle_seconds", "gateway_ws_max_seconds",
    "demo_market", "demo_market_seed", "demo_market_interval_ms",
    "matching_transactional_id", "matching_group_id", "matching_batch_max", "matching_poll_ms",
    "matching_metrics_port", "snapshot_every_commands", "snapshot_every_seconds",
    "snapshot_prefix", "reply_ttl_seconds", "matching_log_level",
    "api_reply_timeout_ms", "api_key_cache_seconds", "api_idempotency_seconds",
    "rate_limits_enabled", "rate_limit_weight_per_minute", "rate_limit_orders_per_10s",
    "rate_limit_orders_per_day", "archive_prefix", "broadcaster_threads", "pushgateway_url",
    # ARNs: read only where a function publishes, and set for those functions (checked below)
    "trade_fills_topic_arn", "alerts_topic_arn", "funding_topic_arn",
    # "false" locally and on AWS alike unless the template says otherwise
    "pg_iam_auth", "kafka_iam_auth",
}  # fmt: skip


@cache
def template() -> dict[str, Any]:
    return load_template()


def functions() -> dict[str, dict[str, Any]]:
    return {
        name: resource
        for name, resource in template()["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Function"
    }


@cache
def settings_env() -> dict[str, str]:
    """Settings field -> the environment variable it reads."""
    tree = ast.parse(SETTINGS_PY.read_text())
    found: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg:
            for call in ast.walk(node.value):
                if (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Name)
                    and call.func.id in ("_env", "_env_int")
                    and call.args
                    and isinstance(call.args[0], ast.Constant)
                ):
                    found.setdefault(node.arg, str(call.args[0].value))
                    break
    return found


def _module_path(name: str) -> Path | None:
    base = LAYER.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


Symbol = tuple[str, str]  # (module, top-level name)


class _Module:
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
                    if _module_path(full) is not None:
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
        return {n for n in found if n.split(".")[0] == "bourse" and _module_path(n)}

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


@cache
def _module(name: str, path: Path) -> _Module:
    return _Module(name, path)


@cache
def liveness(app: Path) -> tuple[frozenset[str], frozenset[Symbol]]:
    """The bourse modules the function's code can import and the top-level functions and
    classes it can call, from its handler module onwards (see the module docstring)."""
    modules: set[str] = set()
    live: set[Symbol] = set()
    todo_modules = [("__app__", app)]
    todo_symbols: list[Symbol] = []
    loaded: dict[str, _Module] = {}
    while todo_modules or todo_symbols:
        while todo_modules:
            module_name, path = todo_modules.pop()
            module = loaded[module_name] = _module(module_name, path)
            code = module.module_code
            for ref in module.references(code):
                if ref not in live:
                    live.add(ref)
                    todo_symbols.append(ref)
            for imported in module.imports(code) - modules:
                modules.add(imported)
                todo_modules.append((imported, _module_path(imported)))  # type: ignore[arg-type]
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
                todo_modules.append((imported, _module_path(imported)))  # type: ignore[arg-type]
        todo_symbols = deferred
    return frozenset(modules), frozenset(live)


def reachable(app: Path) -> frozenset[str]:
    """bourse modules the function's live code imports, transitively."""
    return liveness(app)[0]


def _code_dir(resource: dict[str, Any]) -> Path:
    return REPO_ROOT / str(resource["Properties"]["CodeUri"])


def _app(resource: dict[str, Any]) -> Path:
    module = str(resource["Properties"]["Handler"]).rsplit(".", 1)[0]
    return _code_dir(resource) / f"{module.replace('.', '/')}.py"


def _fields_read(name: str, resource: dict[str, Any]) -> set[str]:
    fields = set(settings_env())
    # bourse.settings itself mentions every field; what counts is who reads them.
    modules = reachable(_app(resource)) - {"bourse.settings"}
    sources = [_app(resource).read_text()] + [
        p.read_text() for m in modules if (p := _module_path(m))
    ]
    used: set[str] = set()
    for text in sources:
        used |= set(re.findall(r"\.([a-z_][a-z0-9_]*)\b", text)) & fields
    return used


def _environment(resource: dict[str, Any]) -> dict[str, Any]:
    env = dict(template()["Globals"]["Function"].get("Environment", {}).get("Variables", {}))
    env.update(resource["Properties"].get("Environment", {}).get("Variables", {}))
    return env


# --- policies -----------------------------------------------------------------------------------


@cache
def policy_templates() -> dict[str, Any]:
    if POLICY_TEMPLATES is None:
        pytest.fail("samtranslator's policy templates are missing: run `make tools`")
    templates: dict[str, Any] = json.loads(POLICY_TEMPLATES.read_text())["Templates"]
    return templates


def _statement_grants(statement: dict[str, Any], targets: set[str]) -> set[tuple[str, str]]:
    if statement.get("Effect") != "Allow":
        return set()
    actions = statement.get("Action", [])
    actions = [actions] if isinstance(actions, str) else actions
    return {(action, target) for action in actions for target in targets}


def _targets(value: Any) -> set[str]:
    """The logical ids a Resource (or policy template parameter) names; '*' for any."""
    names = references(value)
    if value == "*" or (isinstance(value, list) and "*" in value):
        names.add("*")
    return names


def grants(resource: dict[str, Any]) -> set[tuple[str, str]]:
    """(action pattern, logical id) pairs the function's policies allow."""
    resources = template()["Resources"]
    allowed: set[tuple[str, str]] = set()
    for policy in resource["Properties"].get("Policies", []):
        statements: list[tuple[dict[str, Any], set[str] | None]] = []
        if isinstance(policy, str) or (isinstance(policy, dict) and "Fn::Sub" in policy):
            # An AWS managed policy (AWSLambdaMSKExecutionRole: describe the cluster, manage
            # ENIs): none of the data-plane actions checked here.
            continue
        if isinstance(policy, dict) and "Statement" in policy:
            statements = [(s, None) for s in policy["Statement"]]
        elif isinstance(policy, dict) and set(policy) == {"Ref"}:
            managed = resources.get(policy["Ref"], {})
            if managed.get("Type") == "AWS::IAM::ManagedPolicy":
                document = managed["Properties"]["PolicyDocument"]
                statements = [(s, None) for s in document["Statement"]]
        elif isinstance(policy, dict) and len(policy) == 1:
            ((name, params),) = policy.items()
            definition = policy_templates().get(name)
            assert definition is not None, f"unknown SAM policy template {name}"
            targets = _targets(params)
            statements = [(s, targets) for s in definition["Definition"]["Statement"]]
        for statement, given in statements:
            resource_targets = given if given is not None else _targets(statement["Resource"])
            allowed |= _statement_grants(statement, resource_targets)
    return allowed | key_policy_grants(resource)


def key_policy_grants(resource: dict[str, Any]) -> set[tuple[str, str]]:
    """What KMS key policies allow the function's own role (SAM's ``<Function>Role``) by name:
    a key that only one role may use says so in its policy, not in the role's."""
    role = next(name for name, r in functions().items() if r is resource) + "Role"
    allowed: set[tuple[str, str]] = set()
    for logical_id, key in template()["Resources"].items():
        if key["Type"] != "AWS::KMS::Key":
            continue
        for statement in key["Properties"].get("KeyPolicy", {}).get("Statement", []):
            principal = statement.get("Principal", {})
            if isinstance(principal, dict) and role in references(principal.get("AWS")):
                allowed |= _statement_grants(statement, {logical_id})
    return allowed


def allows(allowed: set[tuple[str, str]], action: str, target: str) -> bool:
    return any(
        fnmatch.fnmatchcase(action, pattern) and name in (target, "*") for pattern, name in allowed
    )


def needed_actions(name: str, resource: dict[str, Any]) -> set[tuple[str, str]]:
    excluded = set(NOT_CALLED.get(name, {}))
    modules, live = liveness(_app(resource))
    modules -= excluded
    needed = set(FUNCTION_ACTIONS.get(name, set()))
    for key, actions in ADAPTER_ACTIONS.items():
        module, _, symbol = key.partition(":")
        if module in excluded or key in excluded:
            continue
        if (module, symbol) in live if symbol else module in modules:
            needed |= actions
    events = resource["Properties"].get("Events", {}).values()
    if any(event.get("Type") == "MSK" for event in events):
        needed |= MSK_TRIGGER
    return needed


# --- tests ----------------------------------------------------------------------------------------


def test_the_template_declares_functions() -> None:
    assert len(functions()) >= 8


@pytest.mark.parametrize("name", sorted(functions()))
def test_handler_exists_and_imports(name: str) -> None:
    from devstack.gateway.runtime import load_handler
    from devstack.gateway.template_api import load_rest_api

    resource = functions()[name]
    assert _app(resource).exists(), f"{name}: {_app(resource)} is missing"
    api = load_rest_api("local", "us-east-1", int(os.environ.get("BOURSE_MOTO_PORT", "4566")))
    handler = load_handler(api.functions[name])
    assert callable(handler), f"{name}: {resource['Properties']['Handler']} is not callable"


@pytest.mark.parametrize("name", sorted(functions()))
def test_every_setting_the_code_reads_is_set(name: str) -> None:
    resource = functions()[name]
    env = _environment(resource)
    missing = sorted(
        f"{settings_env()[field]} ({field})"
        for field in _fields_read(name, resource) - DEFAULTS_HOLD_ON_AWS
        if field in settings_env() and settings_env()[field] not in env
    )
    assert not missing, f"{name} reads settings its environment does not set: {missing}"


@pytest.mark.parametrize("name", sorted(functions()))
def test_policies_allow_every_call(name: str) -> None:
    resource = functions()[name]
    allowed = grants(resource)
    missing = sorted(
        f"{action} on {target}"
        for action, target in needed_actions(name, resource)
        if not allows(allowed, action, target)
    )
    assert not missing, f"{name}'s policies do not allow: {missing}"


def test_publishers_get_their_topic_arns() -> None:
    for name, variable in (
        ("RecorderFunction", "TRADE_FILLS_TOPIC_ARN"), ("SettlementFunction", "ALERTS_TOPIC_ARN"),
        ("RecorderFunction", "FUNDING_TOPIC_ARN"), ("RecorderFunction", "ALERTS_TOPIC_ARN"),
    ):  # fmt: skip
        assert variable in _environment(functions()[name]), f"{name} needs {variable}"


NAME_PROPERTY = {
    "AWS::DynamoDB::Table": "TableName", "AWS::S3::Bucket": "BucketName",
    "AWS::SNS::Topic": "TopicName", "AWS::SQS::Queue": "QueueName",
}  # fmt: skip


@pytest.mark.parametrize(
    ("suffix", "kinds"),
    [
        ("_table", {"AWS::DynamoDB::Table"}),
        ("_bucket", {"AWS::S3::Bucket"}),
        ("_topic_name", {"AWS::SNS::Topic"}),
        ("_queue_name", {"AWS::SQS::Queue"}),
    ],
)
def test_every_resource_the_code_names_is_declared(suffix: str, kinds: set[str]) -> None:
    """Each settings field naming a table/bucket/topic/queue is set (in Globals) from a
    resource of that kind, and its local default is that resource's name at Stage=local."""
    from bourse.settings import get_settings

    resources = template()["Resources"]
    env = template()["Globals"]["Function"]["Environment"]["Variables"]
    defaults = get_settings()
    fields = [f for f in settings_env() if f.endswith(suffix)]
    assert fields
    for field in fields:
        variable = settings_env()[field]
        assert variable in env, f"{variable} ({field}) is not set in Globals"
        (logical_id,) = references(env[variable])
        resource = resources[logical_id]
        assert resource["Type"] in kinds, f"{variable} names {logical_id}, a {resource['Type']}"
        name_prop = NAME_PROPERTY[resource["Type"]]
        declared = resource["Properties"][name_prop]["Fn::Sub"].replace("${Stage}", "local")
        assert getattr(defaults, field) == declared or os.environ.get(variable), field
