"""Provisioned MSK keeps what the matching service's exactly-once and the record rest on: from
four brokers, three replicas and min.insync.replicas 2 for the topics, the consumer offsets
and the transaction log; every profile's broker count is one the template accepts."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest

from devstack.cfn import load_template
from devstack.paths import REPO_ROOT

MSK = load_template(REPO_ROOT / "infra" / "msk.yaml")


def _server_properties(brokers: int) -> dict[str, str]:
    text, values = MSK["Resources"]["BrokerConfiguration"]["Properties"]["ServerProperties"][
        "Fn::Sub"
    ]
    condition = MSK["Conditions"]["HasTwoBrokers"]["Fn::Equals"]
    assert condition == [{"Ref": "BrokerCount"}, 2]
    resolved = {
        name: str(spec["Fn::If"][1] if brokers == 2 else spec["Fn::If"][2])
        for name, spec in values.items()
    }
    text = re.sub(r"\$\{(\w+)\}", lambda m: resolved[m.group(1)], text)
    return dict(line.split("=", 1) for line in text.splitlines() if line.strip())


@pytest.mark.parametrize("brokers", [4, 6])
def test_four_brokers_and_more_keep_three_replicas_two_in_sync(brokers: int) -> None:
    props = _server_properties(brokers)
    for name in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert props[name] == "3", name
    assert props["min.insync.replicas"] == props["transaction.state.log.min.isr"] == "2"
    assert props["unclean.leader.election.enable"] == "false"
    assert props["auto.create.topics.enable"] == "false"
    assert int(props["offsets.retention.minutes"]) >= 30 * 24 * 60


def test_two_brokers_keep_two_replicas() -> None:
    props = _server_properties(2)
    assert props["default.replication.factor"] == "2"
    assert props["min.insync.replicas"] == "1"


def test_the_cluster_uses_the_configuration_and_the_count() -> None:
    cluster: dict[str, Any] = MSK["Resources"]["ProvisionedCluster"]["Properties"]
    assert cluster["NumberOfBrokerNodes"] == {"Ref": "BrokerCount"}
    assert cluster["ConfigurationInfo"]["Arn"] == {"Fn::GetAtt": ["BrokerConfiguration", "Arn"]}


def test_staging_and_prod_run_four_brokers() -> None:
    config = tomllib.loads((REPO_ROOT / "samconfig.toml").read_text())
    for stage in ("staging", "prod"):
        overrides = config[stage]["deploy"]["parameters"]["parameter_overrides"]
        assert "MskBrokerCount=4" in overrides.split(), stage
