"""Alarms reach someone, and nothing that can fail goes unwatched (issue 19).

Read from template.yaml and its nested stacks (infra/*.yaml) as written:

- every CloudWatch alarm notifies the alerts topic when it fires and when it clears;
- every function has an Errors and a Throttles alarm;
- every queue that is some queue's dead-letter target has a depth alarm (> 0 visible);
- what the recorder and settlement report through EMF (seq gaps, poison records, settlement
  breaks) is alarmed on, under the names the code emits;
- the alerts topic has an email (and webhook) subscription only when its parameter is set;
- the Prometheus rules the AMP workspace evaluates are infra/prometheus/alerts.yml, word for
  word, and promtool accepts them;
- the CloudWatch dashboard shows every alarm.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from typing import Any

import pytest
import yaml

from devstack.cfn import load_template
from devstack.paths import REPO_ROOT

pytestmark = pytest.mark.unit

ALERTS_TOPIC = {"Ref": "AlertsTopic"}
RULES_FILE = REPO_ROOT / "infra" / "prometheus" / "alerts.yml"
FUNCTION_TYPES = ("AWS::Serverless::Function", "AWS::Lambda::Function")


@cache
def root() -> dict[str, Any]:
    return load_template(REPO_ROOT / "template.yaml")


@cache
def nested() -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Nested stack name -> (its template, the parameters the root passes it)."""
    stacks = {}
    for name, resource in root()["Resources"].items():
        if resource["Type"] == "AWS::Serverless::Application":
            props = resource["Properties"]
            template = load_template(REPO_ROOT / str(props["Location"]))
            stacks[name] = (template, props.get("Parameters") or {})
    return stacks


def in_root_terms(value: Any, passed: dict[str, Any] | None) -> Any:
    """A nested template's ``!Ref Parameter`` as the root's expression that fills it."""
    if (
        passed is not None
        and isinstance(value, dict)
        and set(value) == {"Ref"}
        and value["Ref"] in passed
    ):
        return passed[value["Ref"]]
    return value


def alarms() -> list[tuple[str, dict[str, Any], dict[str, Any] | None]]:
    """(where, alarm properties, parameters passed to its stack or None for the root)."""
    found: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = []
    for name, resource in root()["Resources"].items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            found.append((name, resource["Properties"], None))
    for stack, (template, passed) in nested().items():
        for name, resource in template["Resources"].items():
            if resource["Type"] == "AWS::CloudWatch::Alarm":
                found.append((f"{stack}/{name}", resource["Properties"], passed))
    return found


def dimension(props: dict[str, Any], name: str, passed: dict[str, Any] | None) -> Any:
    for entry in props.get("Dimensions") or []:
        if entry["Name"] == name:
            return in_root_terms(entry["Value"], passed)
    return None


def test_there_are_alarms() -> None:
    assert len(alarms()) >= 30


@pytest.mark.parametrize("where", [where for where, _, _ in alarms()])
def test_every_alarm_notifies_the_alerts_topic(where: str) -> None:
    props, passed = next((p, s) for w, p, s in alarms() if w == where)
    for key in ("AlarmActions", "OKActions"):
        actions = [in_root_terms(a, passed) for a in props.get(key) or []]
        assert ALERTS_TOPIC in actions, f"{where}: {key} {actions} lack the alerts topic"


def functions() -> list[tuple[str, Any]]:
    """(logical id, the expression that is its name, in root terms)."""
    found = [(name, {"Ref": name}) for name, resource in root()["Resources"].items()
             if resource["Type"] in FUNCTION_TYPES]  # fmt: skip
    for stack, (template, _) in nested().items():
        found += [
            (f"{stack}/{name}", {"Ref": name})
            for name, resource in template["Resources"].items()
            if resource["Type"] in FUNCTION_TYPES
        ]
    return found


def test_the_functions_are_found() -> None:
    names = {name for name, _ in functions()}
    assert {"OrdersFunction", "RecorderFunction", "MigrationsFunction"} <= names


def names_of(function: str) -> list[Any]:
    """The expressions, in root terms, that are this function's name: ``!Ref`` of it in its
    own template and, for a nested stack's function, ``!GetAtt Stack.Outputs.X`` of each
    output that is that ``!Ref``."""
    if "/" not in function:
        return [{"Ref": function}]
    stack, logical = function.split("/", 1)
    outputs = nested()[stack][0].get("Outputs") or {}
    return [
        {"Fn::GetAtt": [stack, f"Outputs.{name}"]}
        for name, output in outputs.items() if output["Value"] == {"Ref": logical}
    ]  # fmt: skip


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
@pytest.mark.parametrize("function", [name for name, _ in functions()])
def test_every_function_has_an_errors_and_a_throttles_alarm(function: str, metric: str) -> None:
    names = names_of(function)
    watched = [
        p for _, p, passed in alarms()
        if p.get("Namespace") == "AWS/Lambda" and p.get("MetricName") == metric
        and dimension(p, "FunctionName", passed) in names
    ]  # fmt: skip
    assert watched, f"no {metric} alarm on {function} (a nested stack's function: export its name)"


def dead_letter_queues() -> list[str]:
    queues = []
    for template in [root(), *(t for t, _ in nested().values())]:
        for resource in template["Resources"].values():
            if resource["Type"] != "AWS::SQS::Queue":
                continue
            target = ((resource.get("Properties") or {}).get("RedrivePolicy") or {}).get(
                "deadLetterTargetArn"
            )
            if target is not None:
                assert isinstance(target, dict) and "Fn::GetAtt" in target, target
                queues.append(target["Fn::GetAtt"][0])
    return queues


def test_the_dead_letter_queues_are_found() -> None:
    assert "SettlementDeadLetterQueue" in dead_letter_queues()


@pytest.mark.parametrize("queue", dead_letter_queues())
def test_every_dead_letter_queue_has_a_depth_alarm(queue: str) -> None:
    names = ({"Fn::GetAtt": [queue, "QueueName"]}, {"Fn::GetAtt": f"{queue}.QueueName"})
    watched = [
        p for _, p, passed in alarms()
        if p.get("Namespace") == "AWS/SQS"
        and p.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and dimension(p, "QueueName", passed) in names
    ]  # fmt: skip
    assert watched, f"no depth alarm on {queue}"
    for props in watched:
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props["Threshold"] == 0  # one dead letter is one to look at


def emitted_metrics() -> set[str]:
    names: set[str] = set()
    for path in (REPO_ROOT / "layers" / "bourse" / "bourse").rglob("*.py"):
        names |= set(re.findall(r'add_metric\(\s*(?:name=)?"(\w+)"', path.read_text()))
    return names


@pytest.mark.parametrize("metric", ["SeqGaps", "PoisonRecords", "SettlementBreaks"])
def test_the_consumers_integrity_metrics_are_alarmed(metric: str) -> None:
    assert metric in emitted_metrics(), f"the code no longer emits {metric}"
    watched = [p for _, p, _ in alarms()
               if p.get("Namespace") == "Bourse" and p.get("MetricName") == metric]  # fmt: skip
    assert watched, f"no alarm on Bourse/{metric}"
    for props in watched:
        # Powertools' default dimension: POWERTOOLS_SERVICE_NAME of the functions' Globals
        service = root()["Globals"]["Function"]["Environment"]["Variables"][
            "POWERTOOLS_SERVICE_NAME"
        ]
        assert dimension(props, "service", None) == service
        assert props["Threshold"] == 0


def test_every_bourse_namespace_alarm_watches_a_metric_the_code_emits() -> None:
    emitted = emitted_metrics()
    for where, props, _ in alarms():
        if props.get("Namespace") == "Bourse":
            assert props["MetricName"] in emitted, where


@pytest.mark.parametrize(
    ("subscription", "parameter"),
    [("AlertEmailSubscription", "AlertEmail"), ("AlertWebhookSubscription", "AlertWebhookUrl")],
)
def test_alert_subscriptions_exist_only_with_their_parameter(
    subscription: str, parameter: str
) -> None:
    template = root()
    assert template["Parameters"][parameter]["Default"] == ""
    resource = template["Resources"][subscription]
    assert resource["Properties"]["TopicArn"] == ALERTS_TOPIC
    assert resource["Properties"]["Endpoint"] == {"Ref": parameter}
    condition = template["Conditions"][resource["Condition"]]
    assert condition == {"Fn::Not": [{"Fn::Equals": [{"Ref": parameter}, ""]}]}


def test_every_alerts_topic_subscription_is_conditional() -> None:
    for name, resource in root()["Resources"].items():
        if resource["Type"] == "AWS::SNS::Subscription" and (
            resource["Properties"]["TopicArn"] == ALERTS_TOPIC
        ):
            assert "Condition" in resource, f"{name} subscribes whatever the parameters"


def test_the_email_parameter_refuses_what_sns_would() -> None:
    pattern = re.compile(root()["Parameters"]["AlertEmail"]["AllowedPattern"])
    assert pattern.fullmatch("")
    assert pattern.fullmatch("ops@example.com")
    assert not pattern.fullmatch("ops at example")


def test_prometheus_and_the_alert_manager_may_publish_to_the_alerts_topic() -> None:
    statements = root()["Resources"]["AlertsTopicPolicy"]["Properties"]["PolicyDocument"][
        "Statement"
    ]
    services = {s["Principal"].get("Service") for s in statements}
    assert {"cloudwatch.amazonaws.com", "aps.amazonaws.com"} <= services
    network = nested()["Network"][0]
    key = network["Resources"]["AlertsKey"]["Properties"]["KeyPolicy"]["Statement"]
    assert {"cloudwatch.amazonaws.com", "aps.amazonaws.com"} <= {
        s["Principal"].get("Service") for s in key
    }


def observability() -> dict[str, Any]:
    return nested()["Observability"][0]


def test_the_workspace_rules_are_the_repositorys_rule_file() -> None:
    data = observability()["Resources"]["AlertRules"]["Properties"]["Data"]
    assert data == RULES_FILE.read_text(), (
        "infra/observability.yaml AlertRules.Data differs from infra/prometheus/alerts.yml: "
        "copy the file into it"
    )


def test_the_alert_manager_publishes_to_the_alerts_topic() -> None:
    workspace = observability()["Resources"]["PrometheusWorkspace"]["Properties"]
    body = workspace["AlertManagerDefinition"]["Fn::Sub"]
    config = yaml.safe_load(yaml.safe_load(body)["alertmanager_config"])
    receivers = {r["name"]: r for r in config["receivers"]}
    sns = receivers[config["route"]["receiver"]]["sns_configs"]
    assert [c["topic_arn"] for c in sns] == ["${AlertsTopicArn}"]
    assert all(c["sigv4"]["region"] for c in sns)
    passed = nested()["Observability"][1]
    assert passed["AlertsTopicArn"] == ALERTS_TOPIC


def test_the_rules_cover_what_only_prometheus_sees() -> None:
    rules = yaml.safe_load(RULES_FILE.read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    for metric in ("bourse_matching_batch_seconds_bucket", "bourse_matching_consumer_lag",
                   "bourse_matching_snapshot_age_seconds", "bourse_matching_ready",
                   "push_time_seconds"):  # fmt: skip
        assert metric in exprs, metric


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        ["promtool", "check", "rules", str(RULES_FILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_shows_every_alarm() -> None:
    resources = observability()["Resources"]
    body = resources["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"]
    shown = set(re.findall(r"\$\{(\w+)\.Arn\}", body))
    alarmed = {n for n, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    assert alarmed - shown == set()
    assert shown - alarmed == set()
