"""The network contract (infra/deploy_check/network.py) on small templates, good and bad.

Each test writes a root template and its nested stacks as YAML (short tags, as the real ones
are written), loads them as the deploy check does and runs the check. The good shape is the
design's: functions, the MSK pollers (in the cluster's group), the matching task, RDS Proxy,
Aurora, Redis, the Pushgateway and interface endpoints, each flow one rule naming both ends.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.cfn import load_template
from infra.deploy_check import network
from infra.deploy_check.checks import REGISTRY, Stack, run_check

pytestmark = pytest.mark.unit

ROOT = """
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
  WithNat: {Type: String, Default: "yes"}
Globals:
  Function:
    VpcConfig:
      SubnetIds: !Split [",", !GetAtt Network.Outputs.PrivateSubnetIds]
      SecurityGroupIds: [!GetAtt Network.Outputs.FunctionSecurityGroupId]
Resources:
  RecorderFunction:
    Type: AWS::Serverless::Function
    Properties:
      Handler: app.lambda_handler
      Events:
        Events:
          Type: MSK
          Properties: {Stream: !GetAtt Msk.Outputs.ClusterArn, Topics: [bourse.events]}
  ReadsFunction:
    Type: AWS::Serverless::Function
    Properties: {Handler: app.lambda_handler}
  Network:
    Type: AWS::Serverless::Application
    Properties:
      Location: network.yaml
      Parameters: {WithNat: !Ref WithNat}
  Msk:
    Type: AWS::Serverless::Application
    Properties:
      Location: msk.yaml
      Parameters:
        PrivateSubnetIds: !GetAtt Network.Outputs.PrivateSubnetIds
        SecurityGroupId: !GetAtt Network.Outputs.MskSecurityGroupId
  Data:
    Type: AWS::Serverless::Application
    Properties:
      Location: data.yaml
      Parameters:
        PrivateSubnetIds: !GetAtt Network.Outputs.PrivateSubnetIds
        ProxySecurityGroupId: !GetAtt Network.Outputs.ProxySecurityGroupId
        DatabaseSecurityGroupId: !GetAtt Network.Outputs.DatabaseSecurityGroupId
        RedisSecurityGroupId: !GetAtt Network.Outputs.RedisSecurityGroupId
  Matching:
    Type: AWS::Serverless::Application
    Properties:
      Location: matching.yaml
      Parameters:
        PrivateSubnetIds: !GetAtt Network.Outputs.PrivateSubnetIds
        SecurityGroupId: !GetAtt Network.Outputs.MatchingSecurityGroupId
        PushgatewaySecurityGroupId: !GetAtt Network.Outputs.PushgatewaySecurityGroupId
"""


def _group(description: str, egress: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    props: dict[str, Any] = {"GroupDescription": description, "VpcId": {"Ref": "Vpc"}}
    if egress is not None:
        props["SecurityGroupEgress"] = egress
    return {"Type": "AWS::EC2::SecurityGroup", "Properties": props}


NOTHING_OUT = [{"IpProtocol": "-1", "CidrIp": "127.0.0.1/32"}]
HTTPS_OUT = [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": "0.0.0.0/0"}]


def _flow(kind: str, group: str, port: int, peer: str) -> dict[str, Any]:
    key = "DestinationSecurityGroupId" if kind == "Egress" else "SourceSecurityGroupId"
    return {
        "Type": f"AWS::EC2::SecurityGroup{kind}",
        "Properties": {
            "GroupId": {"Ref": group}, "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
            key: {"Ref": peer},
        },
    }  # fmt: skip


def _both(out: str, into: str, port: int) -> dict[str, dict[str, Any]]:
    return {
        f"{out}To{into}{port}": _flow("Egress", f"{out}SecurityGroup", port,
                                      f"{into}SecurityGroup"),
        f"{into}From{out}{port}": _flow("Ingress", f"{into}SecurityGroup", port,
                                        f"{out}SecurityGroup"),
    }  # fmt: skip


def _endpoint(service: str) -> dict[str, Any]:
    return {
        "Type": "AWS::EC2::VPCEndpoint",
        "Properties": {
            "VpcId": {"Ref": "Vpc"}, "VpcEndpointType": "Interface",
            "ServiceName": {"Fn::Sub": f"com.amazonaws.${{AWS::Region}}.{service}"},
            "SubnetIds": [{"Ref": "PrivateSubnetA"}, {"Ref": "PrivateSubnetB"}],
            "SecurityGroupIds": [{"Ref": "EndpointSecurityGroup"}],
        },
    }  # fmt: skip


def network_template() -> dict[str, Any]:
    resources: dict[str, Any] = {
        "Vpc": {"Type": "AWS::EC2::VPC", "Properties": {"CidrBlock": {"Ref": "VpcCidr"}}},
        "PublicSubnet": {"Type": "AWS::EC2::Subnet", "Properties": {
            "CidrBlock": {"Fn::Select": [0, {"Fn::Cidr": [{"Ref": "VpcCidr"}, 16, 12]}]}}},
        "PrivateSubnetA": {"Type": "AWS::EC2::Subnet", "Properties": {
            "CidrBlock": {"Fn::Select": [8, {"Fn::Cidr": [{"Ref": "VpcCidr"}, 16, 12]}]}}},
        "PrivateSubnetB": {"Type": "AWS::EC2::Subnet", "Properties": {
            "CidrBlock": {"Fn::Select": [9, {"Fn::Cidr": [{"Ref": "VpcCidr"}, 16, 12]}]}}},
        "Igw": {"Type": "AWS::EC2::InternetGateway"},
        "Nat": {"Type": "AWS::EC2::NatGateway", "Condition": "HasNat",
                "Properties": {"SubnetId": {"Ref": "PublicSubnet"}}},
        "PublicTable": {"Type": "AWS::EC2::RouteTable"},
        "PrivateTable": {"Type": "AWS::EC2::RouteTable"},
        "PublicRoute": {"Type": "AWS::EC2::Route", "Properties": {
            "RouteTableId": {"Ref": "PublicTable"}, "DestinationCidrBlock": "0.0.0.0/0",
            "GatewayId": {"Ref": "Igw"}}},
        "PrivateRoute": {"Type": "AWS::EC2::Route", "Condition": "HasNat", "Properties": {
            "RouteTableId": {"Ref": "PrivateTable"}, "DestinationCidrBlock": "0.0.0.0/0",
            "NatGatewayId": {"Ref": "Nat"}}},
        "PublicAssoc": {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "SubnetId": {"Ref": "PublicSubnet"}, "RouteTableId": {"Ref": "PublicTable"}}},
        "PrivateAssocA": {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "SubnetId": {"Ref": "PrivateSubnetA"}, "RouteTableId": {"Ref": "PrivateTable"}}},
        "PrivateAssocB": {"Type": "AWS::EC2::SubnetRouteTableAssociation", "Properties": {
            "SubnetId": {"Ref": "PrivateSubnetB"}, "RouteTableId": {"Ref": "PrivateTable"}}},
        "FunctionSecurityGroup": _group("functions", HTTPS_OUT),
        "MatchingSecurityGroup": _group("matching", HTTPS_OUT),
        "PushgatewaySecurityGroup": _group("pushgateway", HTTPS_OUT),
        "MskSecurityGroup": _group("msk", HTTPS_OUT),
        "ProxySecurityGroup": _group("proxy", [
            {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "CidrIp": {"Ref": "VpcCidr"}}
        ]),
        "DatabaseSecurityGroup": _group("aurora", NOTHING_OUT),
        "RedisSecurityGroup": _group("redis", NOTHING_OUT),
        "EndpointSecurityGroup": {"Type": "AWS::EC2::SecurityGroup", "Properties": {
            "GroupDescription": "endpoints", "VpcId": {"Ref": "Vpc"},
            "SecurityGroupIngress": [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443,
                                      "CidrIp": {"Ref": "VpcCidr"}}],
            "SecurityGroupEgress": NOTHING_OUT}},
        **_both("Function", "Msk", 9098),
        **_both("Function", "Proxy", 5432),
        **_both("Function", "Redis", 6379),
        **_both("Matching", "Msk", 9098),
        **_both("Matching", "Redis", 6379),
        **_both("Matching", "Pushgateway", 9091),
        **_both("Proxy", "Database", 5432),
        **_both("Msk", "Msk", 9098),  # the pollers, in the cluster's own group
        "SqsEndpoint": _endpoint("sqs"),
        "SecretsManagerEndpoint": _endpoint("secretsmanager"),
    }  # fmt: skip
    outputs = {
        "PrivateSubnetIds": {"Value": {"Fn::Join": [",", [{"Ref": "PrivateSubnetA"},
                                                           {"Ref": "PrivateSubnetB"}]]}},
        **{f"{g}SecurityGroupId": {"Value": {"Ref": f"{g}SecurityGroup"}}
           for g in ("Function", "Matching", "Pushgateway", "Msk", "Proxy", "Database", "Redis")},
    }  # fmt: skip
    return {
        "Parameters": {"VpcCidr": {"Type": "String", "Default": "10.20.0.0/16"},
                       "WithNat": {"Type": "String", "Default": "yes"}},
        "Conditions": {"HasNat": {"Fn::Equals": [{"Ref": "WithNat"}, "yes"]}},
        "Resources": resources,
        "Outputs": outputs,
    }  # fmt: skip


MSK = """
Parameters:
  PrivateSubnetIds: {Type: "List<AWS::EC2::Subnet::Id>"}
  SecurityGroupId: {Type: "AWS::EC2::SecurityGroup::Id"}
Resources:
  Cluster:
    Type: AWS::MSK::ServerlessCluster
    Properties:
      VpcConfigs:
        - SubnetIds: !Ref PrivateSubnetIds
          SecurityGroups: [!Ref SecurityGroupId]
Outputs:
  ClusterArn: {Value: !GetAtt Cluster.Arn}
"""

DATA = """
Parameters:
  PrivateSubnetIds: {Type: "List<AWS::EC2::Subnet::Id>"}
  ProxySecurityGroupId: {Type: "AWS::EC2::SecurityGroup::Id"}
  DatabaseSecurityGroupId: {Type: "AWS::EC2::SecurityGroup::Id"}
  RedisSecurityGroupId: {Type: "AWS::EC2::SecurityGroup::Id"}
Resources:
  DbCluster:
    Type: AWS::RDS::DBCluster
    Properties: {VpcSecurityGroupIds: [!Ref DatabaseSecurityGroupId]}
  DbProxy:
    Type: AWS::RDS::DBProxy
    Properties:
      VpcSubnetIds: !Ref PrivateSubnetIds
      VpcSecurityGroupIds: [!Ref ProxySecurityGroupId]
  Redis:
    Type: AWS::ElastiCache::ReplicationGroup
    Properties: {SecurityGroupIds: [!Ref RedisSecurityGroupId]}
"""

MATCHING = """
Parameters:
  PrivateSubnetIds: {Type: "List<AWS::EC2::Subnet::Id>"}
  SecurityGroupId: {Type: "AWS::EC2::SecurityGroup::Id"}
  PushgatewaySecurityGroupId: {Type: "AWS::EC2::SecurityGroup::Id"}
Resources:
  Task:
    Type: AWS::ECS::TaskDefinition
    Properties:
      ContainerDefinitions: [{Name: matching, PortMappings: [{ContainerPort: 9108}]}]
  Service:
    Type: AWS::ECS::Service
    Properties:
      TaskDefinition: !Ref Task
      NetworkConfiguration:
        AwsvpcConfiguration:
          AssignPublicIp: DISABLED
          Subnets: !Ref PrivateSubnetIds
          SecurityGroups: [!Ref SecurityGroupId]
  PushgatewayTask:
    Type: AWS::ECS::TaskDefinition
    Properties:
      ContainerDefinitions: [{Name: pushgateway, PortMappings: [{ContainerPort: 9091}]}]
  PushgatewayService:
    Type: AWS::ECS::Service
    Properties:
      TaskDefinition: !Ref PushgatewayTask
      NetworkConfiguration:
        AwsvpcConfiguration:
          Subnets: !Ref PrivateSubnetIds
          SecurityGroups: [!Ref PushgatewaySecurityGroupId]
"""


def make_stack(
    tmp_path: Path,
    net: dict[str, Any] | None = None,
    samconfig: str | None = None,
    root: str = ROOT,
) -> Stack:
    (tmp_path / "template.yaml").write_text(root)
    (tmp_path / "network.yaml").write_text(yaml.safe_dump(net or network_template()))
    (tmp_path / "msk.yaml").write_text(MSK)
    (tmp_path / "data.yaml").write_text(DATA)
    (tmp_path / "matching.yaml").write_text(MATCHING)
    if samconfig is not None:
        (tmp_path / "samconfig.toml").write_text(samconfig)
    template = load_template(tmp_path / "template.yaml")
    nested = {
        name: load_template(tmp_path / str(resource["Properties"]["Location"]))
        for name, resource in template["Resources"].items()
        if resource["Type"] == "AWS::Serverless::Application"
    }
    return Stack(
        template=template, nested=nested, files={"template": str(tmp_path / "template.yaml")}
    )


def problems(stack: Stack) -> list[str]:
    return [failure.message for failure in network.check_network(stack)]


def test_the_designs_shape_passes(tmp_path: Path) -> None:
    assert problems(make_stack(tmp_path)) == []


def test_registered_in_the_deploy_check_registry(tmp_path: Path) -> None:
    assert "network" in REGISTRY
    assert run_check(REGISTRY["network"], make_stack(tmp_path)) == []


def test_the_original_msk_group_leaves_the_pollers_with_nothing(tmp_path: Path) -> None:
    """Issue 14: egress only to 127.0.0.1/32 and no self-reference on 9098 — the recorder
    would never be invoked."""
    net = network_template()
    net["Resources"]["MskSecurityGroup"] = _group("msk", NOTHING_OUT)
    del net["Resources"]["MskToMsk9098"], net["Resources"]["MskFromMsk9098"]
    found = problems(make_stack(tmp_path, net))
    poller = "RecorderFunction (MSK trigger's pollers"
    assert any(p.startswith(poller) and "cannot reach Msk/Cluster on 9098" in p for p in found)
    assert any(p.startswith(poller) and "cannot reach lambda" in p for p in found)
    assert any(p.startswith(poller) and "cannot reach sts" in p for p in found)
    # the functions themselves still reach the brokers: only the pollers are cut off
    assert not any(p.startswith("RecorderFunction cannot reach Msk/Cluster") for p in found)


def test_a_self_reference_on_one_side_only_is_not_enough(tmp_path: Path) -> None:
    net = network_template()
    del net["Resources"]["MskFromMsk9098"]
    found = problems(make_stack(tmp_path, net))
    assert any("no ingress rule of Network/MskSecurityGroup allows tcp 9098 from "
               "Network/MskSecurityGroup" in p for p in found)  # fmt: skip


def test_without_nat_the_pollers_need_lambda_and_sts_endpoints(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    stack.nested["Network"]["Parameters"]["WithNat"]["Default"] = "no"
    stack.template["Parameters"]["WithNat"]["Default"] = "no"
    found = problems(stack)
    assert any("cannot reach lambda (no lambda interface endpoint" in p for p in found)
    assert any("cannot reach sts (no sts interface endpoint" in p for p in found)
    # with the two endpoints the pollers reach AWS privately
    for service in ("lambda", "sts"):
        stack.nested["Network"]["Resources"][f"{service}Endpoint"] = _endpoint(service)
    found = problems(stack)
    assert not any("pollers" in p for p in found), found


def test_profiles_from_samconfig_are_each_checked(tmp_path: Path) -> None:
    samconfig = """
[dev.deploy.parameters]
parameter_overrides = "Stage=dev WithNat=no"
[prod.deploy.parameters]
parameter_overrides = "Stage=prod WithNat=yes"
"""
    found = problems(make_stack(tmp_path, samconfig=samconfig))
    assert found and all(p.startswith("[dev] ") for p in found), found


def test_ingress_from_outside_the_vpc_is_refused(tmp_path: Path) -> None:
    net = network_template()
    net["Resources"]["RedisSecurityGroup"]["Properties"]["SecurityGroupIngress"] = [
        {"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6379, "CidrIp": "0.0.0.0/0"}
    ]
    found = problems(make_stack(tmp_path, net))
    assert any("Network/RedisSecurityGroup ingress from 0.0.0.0/0 (tcp 6379): from outside the "
               "VPC" in p for p in found)  # fmt: skip


def test_open_egress_and_the_default_egress_rule_are_refused(tmp_path: Path) -> None:
    net = network_template()
    net["Resources"]["DatabaseSecurityGroup"] = _group("aurora", None)  # AWS's allow-all stays
    net["Resources"]["FunctionSecurityGroup"]["Properties"]["SecurityGroupEgress"] = [
        {"IpProtocol": "-1", "CidrIp": "0.0.0.0/0"}
    ]
    found = problems(make_stack(tmp_path, net))
    assert any("Network/DatabaseSecurityGroup (default egress)" in p and "beyond HTTPS" in p
               for p in found)  # fmt: skip
    assert any(p.startswith("Network/FunctionSecurityGroup: Network/FunctionSecurityGroup egress "
                            "to 0.0.0.0/0 (all)") for p in found)  # fmt: skip


def test_https_out_on_a_data_store_group_is_refused(tmp_path: Path) -> None:
    net = network_template()
    net["Resources"]["RedisSecurityGroup"] = _group("redis", HTTPS_OUT)
    found = problems(make_stack(tmp_path, net))
    assert any("Network/RedisSecurityGroup egress to 0.0.0.0/0 (tcp 443): no workload" in p
               for p in found)  # fmt: skip


def test_a_flow_nobody_needs_is_reported(tmp_path: Path) -> None:
    """Functions straight to Aurora (around RDS Proxy) is reachable and needed by nobody."""
    net = network_template()
    net["Resources"].update(_both("Function", "Database", 5432))
    found = problems(make_stack(tmp_path, net))
    assert any(p.startswith("RecorderFunction can reach Data/DbCluster on 5432, which it does not "
                            "need") for p in found)  # fmt: skip


def test_a_missing_flow_is_reported_with_the_side_that_refuses(tmp_path: Path) -> None:
    net = network_template()
    del net["Resources"]["RedisFromMatching6379"]
    found = problems(make_stack(tmp_path, net))
    assert ("Matching/Service cannot reach Data/Redis on 6379: no ingress rule of "
            "Network/RedisSecurityGroup allows tcp 6379 from Network/MatchingSecurityGroup"
            in found)  # fmt: skip


def test_public_placement_is_refused(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    config = stack.nested["Matching"]["Resources"]["Service"]["Properties"]
    config["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"] = "ENABLED"
    assert "Matching/Service: assigns a public IP address" in problems(stack)


def test_the_transformed_form_is_read_as_well(tmp_path: Path) -> None:
    """After SAM's transform: plain Lambda functions with their VpcConfig and an
    AWS::Lambda::EventSourceMapping for the MSK trigger."""
    stack = make_stack(tmp_path)
    transformed = copy.deepcopy(stack.template)
    del transformed["Transform"], transformed["Globals"]
    vpc = stack.template["Globals"]["Function"]["VpcConfig"]
    for name in ("RecorderFunction", "ReadsFunction"):
        transformed["Resources"][name] = {
            "Type": "AWS::Lambda::Function",
            "Properties": {"VpcConfig": vpc},
        }
    transformed["Resources"]["RecorderFunctionEvents"] = {
        "Type": "AWS::Lambda::EventSourceMapping",
        "Properties": {"EventSourceArn": {"Fn::GetAtt": ["Msk", "Outputs.ClusterArn"]},
                       "FunctionName": {"Ref": "RecorderFunction"}},
    }  # fmt: skip
    for name in ("Network", "Msk", "Data", "Matching"):
        transformed["Resources"][name]["Type"] = "AWS::CloudFormation::Stack"
    stack.transformed = json.loads(json.dumps(transformed))
    model = network.build_model(stack, {})
    assert [w.name for w in model.workloads if w.kind == "poller"] == [
        "RecorderFunction (MSK trigger's pollers, in Msk/Cluster's subnets and groups)"
    ]
    assert problems(stack) == []
    del stack.nested["Network"]["Resources"]["MskFromMsk9098"]
    assert any("RecorderFunction (MSK trigger's pollers" in p for p in problems(stack))


def test_without_rds_proxy_the_functions_need_aurora_itself(tmp_path: Path) -> None:
    """A profile without RDS Proxy: the functions' PostgreSQL flow goes to the writer."""
    stack = make_stack(tmp_path)
    del stack.nested["Data"]["Resources"]["DbProxy"]
    found = problems(stack)
    assert any(p.startswith("ReadsFunction cannot reach Data/DbCluster on 5432") for p in found)
    stack.nested["Network"]["Resources"].update(_both("Function", "Database", 5432))
    # the proxy's own flows remain, unused but harmless; nothing else is reported
    assert problems(stack) == []


def _with_prometheus_agent(stack: Stack, scraper: bool = True) -> dict[str, Any]:
    """A Prometheus agent in the matching stack, as infra/observability.yaml has one: its own
    group, HTTPS out, the Pushgateway on 9091 and the matching task's metrics port 9108."""
    resources: dict[str, Any] = stack.nested["Matching"]["Resources"]
    resources["AgentGroup"] = {"Type": "AWS::EC2::SecurityGroup", "Properties": {
        "GroupDescription": "agent", "SecurityGroupEgress": [
            *HTTPS_OUT,
            {"IpProtocol": "tcp", "FromPort": 9091, "ToPort": 9091,
             "DestinationSecurityGroupId": {"Ref": "PushgatewaySecurityGroupId"}},
            {"IpProtocol": "tcp", "FromPort": 9108, "ToPort": 9108,
             "DestinationSecurityGroupId": {"Ref": "SecurityGroupId"}},
        ]}}  # fmt: skip
    for name, group in (("PushgatewayFromAgent", "PushgatewaySecurityGroupId"),
                        ("MatchingFromAgent", "SecurityGroupId")):  # fmt: skip
        port = 9091 if name.startswith("Pushgateway") else 9108
        resources[name] = {"Type": "AWS::EC2::SecurityGroupIngress", "Properties": {
            "GroupId": {"Ref": group}, "IpProtocol": "tcp", "FromPort": port, "ToPort": port,
            "SourceSecurityGroupId": {"Ref": "AgentGroup"}}}  # fmt: skip
    resources["AgentTask"] = {"Type": "AWS::ECS::TaskDefinition", "Properties": {
        "ContainerDefinitions": [{"Name": "agent"}]}}  # fmt: skip
    service: dict[str, Any] = {
        "Type": "AWS::ECS::Service",
        "Properties": {
            "TaskDefinition": {"Ref": "AgentTask"},
            "NetworkConfiguration": {
                "AwsvpcConfiguration": {
                    "Subnets": {"Ref": "PrivateSubnetIds"},
                    "SecurityGroups": [{"Ref": "AgentGroup"}],
                }
            },
        },
    }
    if scraper:
        service["Metadata"] = {"DeployCheck": {"network": "scraper"}}
    resources["AgentService"] = service
    return resources


def test_a_prometheus_agent_needs_the_pushgateway_and_the_metrics_port(tmp_path: Path) -> None:
    stack = make_stack(tmp_path)
    resources = _with_prometheus_agent(stack)
    assert problems(stack) == []
    del resources["MatchingFromAgent"]
    found = problems(stack)
    assert any(p.startswith("Matching/AgentService cannot reach Matching/Service on 9108")
               for p in found), found  # fmt: skip


def test_a_portless_service_without_the_scraper_mark_is_held_to_the_matching_needs(
    tmp_path: Path,
) -> None:
    stack = make_stack(tmp_path)
    _with_prometheus_agent(stack, scraper=False)
    found = problems(stack)
    assert any(p.startswith("Matching/AgentService cannot reach") and "9098" in p
               for p in found), found  # fmt: skip
