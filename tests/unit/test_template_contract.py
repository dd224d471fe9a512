"""template.yaml keeps its promises to the code.

- every function's handler exists and imports;
- every setting a function's code can read whose local default would be wrong on AWS is set
  in its environment (Globals or its own);
- every AWS API action its code calls is allowed by its policies (SAM policy templates are
  expanded from samtranslator's own definitions), on the resource the code uses;
- every table, bucket, topic and queue the code names (bourse.settings) is declared.

What a function "can call" is read from the code by infra/deploy_check/calls.py (its
docstring says how), which `make deploy-check` shares: there the same calls are checked against
the roles SAM's translator generates; here against the policies as written.
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

from devstack.cfn import load_template, local_resolver, references
from devstack.paths import REPO_ROOT
from infra.deploy_check.calls import (
    NOT_CALLED,
    REDIS_FACTORY,
    app_path,
    direct_redis_clients,
    module_path,
    needed_actions,
    opens_redis,
    reachable,
)

pytestmark = pytest.mark.unit

LAYER = REPO_ROOT / "layers" / "bourse"
SETTINGS_PY = LAYER / "bourse" / "settings.py"
POLICY_TEMPLATES = next(
    iter((REPO_ROOT / ".tools" / "sam" / "lib").glob(
        "python3*/site-packages/samtranslator/policy_templates_data/policy_templates.json"
    )),
    None,
)  # fmt: skip

# Settings whose defaults are right on AWS too (tuning) or that only the local stack reads.
DEFAULTS_HOLD_ON_AWS = {
    "region",  # AWS_REGION is set by Lambda itself
    "aws_endpoint_url", "aws_credentials",  # empty off the local stage
    "commands_topic", "events_topic", "marketdata_topic",  # same names on MSK (kafka_topics.py)
    "stack_dir", "kafka_controller_port", "moto_port", "gateway_port",
    "prometheus_port", "pushgateway_port",
    "gateway_ws_idle_seconds", "gateway_ws_max_seconds",
    "demo_market", "demo_market_seed", "demo_market_interval_ms",
    "matching_transactional_id", "matching_group_id", "matching_batch_max", "matching_poll_ms",
    "matching_metrics_port", "snapshot_every_commands", "snapshot_every_seconds",
    "snapshot_prefix", "reply_ttl_seconds", "matching_log_level",
    "api_reply_timeout_ms", "api_key_cache_seconds", "api_key_checked_cache_seconds",
    "api_idempotency_seconds",
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


def _app(resource: dict[str, Any]) -> Path:
    return app_path(resource, REPO_ROOT)


def _fields_read(name: str, resource: dict[str, Any]) -> set[str]:
    fields = set(settings_env())
    # bourse.settings itself mentions every field; what counts is who reads them.
    modules = reachable(_app(resource)) - {"bourse.settings"}
    sources = [_app(resource).read_text()] + [
        p.read_text() for m in modules if (p := module_path(m))
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
    policies: list[Any] = []
    for policy in resource["Properties"].get("Policies", []):
        # A policy under a condition (Fn::If): what either branch grants.
        if isinstance(policy, dict) and set(policy) == {"Fn::If"}:
            policies += [p for p in policy["Fn::If"][1:] if p != {"Ref": "AWS::NoValue"}]
        else:
            policies.append(policy)
    for policy in policies:
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


@pytest.mark.parametrize("name", sorted(functions()))
def test_functions_that_open_redis_have_its_auth_token(name: str) -> None:
    """ElastiCache refuses a client without the AUTH token: a function whose code opens Redis
    does it through the factory (which reads the token) and has LiveViewClientPolicy (which
    lets it read the token: the secret and its key)."""
    resource = functions()[name]
    app = _app(resource)
    # Live code that opens it, or (as for the policies above) the factory's module imported
    # and not declared uncalled.
    imports_factory = REDIS_FACTORY in reachable(app) and REDIS_FACTORY not in NOT_CALLED.get(
        name, {}
    )
    if not (opens_redis(app) or imports_factory):
        return
    problems = [
        f"{module} builds a Redis client without {REDIS_FACTORY}.connect"
        for module in sorted(direct_redis_clients(app))
    ]
    if {"Ref": "LiveViewClientPolicy"} not in resource["Properties"].get("Policies", []):
        problems.append("it opens Redis but lacks LiveViewClientPolicy (the Redis AUTH token)")
    allowed = grants(resource)
    problems += [
        f"its policies do not allow {action} on the Redis secret"
        for action in ("secretsmanager:GetSecretValue", "kms:Decrypt")
        if not allows(allowed, action, "Data")
    ]
    assert not problems, f"{name}: {problems}"


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
        resolver = local_resolver(template(), "local", defaults.region)
        declared = resolver.resolve(resource["Properties"][name_prop])
        assert getattr(defaults, field) == declared or os.environ.get(variable), field
