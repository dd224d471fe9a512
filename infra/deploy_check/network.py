"""The network contract: who can reach what, on which port, computed from the templates.

Everything Bourse runs sits in the VPC of infra/network.yaml; what may talk to what is decided
by the security groups (inline rules, AWS::EC2::SecurityGroupIngress/Egress resources, and the
allow-all egress AWS gives a group declared without inline egress), the subnets (their CIDRs
and whether their default route goes to a NAT gateway) and which group each resource uses:

- the functions (SAM Globals ``VpcConfig``, or their own) and the Lambda functions of the
  nested stacks;
- the MSK triggers' **pollers**: AWS runs them with the *cluster's* subnets and security
  groups, so the cluster's group must let itself in and out on the broker port (9098, IAM over
  TLS) and let HTTPS out to Lambda and STS (through the NAT gateways, or interface endpoints
  for both), or the recorder and broadcaster are never invoked;
- the ECS services (the matching service, the Pushgateway, and the Prometheus agent: a service
  whose ``Metadata.DeployCheck.network`` is ``scraper`` needs the Pushgateway and the matching
  task's metrics port, and nothing else), RDS Proxy, Aurora, Redis, MSK and the interface
  endpoints.

Security-group ids flow as they do when deployed: a nested stack's parameter takes the value
the root template passes (``!GetAtt Network.Outputs.X``), which is the Network stack's output,
which is a ``!Ref`` of one of its groups. Conditions are evaluated for each deploy profile of
samconfig.toml (or the templates' defaults), so a dev profile without NAT gateways is checked
as deployed.

The check (``network``) reports every flow a workload needs that the groups or routes refuse,
every flow between workloads and data stores that nobody needs, ingress from outside the VPC,
0.0.0.0/0 egress on anything but HTTPS from a workload, and workloads in subnets that route to
an internet gateway.
"""

from __future__ import annotations

import ipaddress
import shlex
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.deploy_check.checks import Failure, Stack, check

Network = ipaddress.IPv4Network
ANYWHERE = ipaddress.IPv4Network("0.0.0.0/0")
HTTPS = 443
KAFKA_IAM = 9098
POSTGRES = 5432
REDIS = 6379
PUSHGATEWAY = 9091
MATCHING_METRICS = 9108


class Unknown:
    """A value the templates do not determine offline (an attribute, a pseudo parameter)."""

    def __init__(self, what: str) -> None:
        self.what = what

    def __repr__(self) -> str:
        return f"Unknown({self.what})"


@dataclass(frozen=True)
class ResourceRef:
    """A resource of one stack ("" is the root): what a Ref or a GroupId resolves to."""

    stack: str
    logical_id: str

    @property
    def name(self) -> str:
        return f"{self.stack}/{self.logical_id}" if self.stack else self.logical_id


@dataclass(frozen=True)
class Attribute:
    stack: str
    logical_id: str
    attribute: str


# --- Evaluating the templates for one set of root parameters ---------------------------------


class Evaluator:
    """Resolves intrinsic functions across the root and the nested stacks for one profile."""

    def __init__(self, stack: Stack, root_parameters: Mapping[str, str]) -> None:
        self.root = stack.deployed
        self.nested = stack.nested
        self.root_parameters = dict(root_parameters)
        self._conditions: dict[tuple[str, str], bool] = {}

    def template(self, key: str) -> dict[str, Any]:
        return self.root if key == "" else self.nested.get(key, {})

    def resources(self, key: str) -> dict[str, dict[str, Any]]:
        found = self.template(key).get("Resources") or {}
        return {k: v for k, v in found.items() if isinstance(v, dict)}

    def nested_stack_resource(self, key: str) -> dict[str, Any]:
        return self.resources("").get(key, {})

    def exists(self, key: str, resource: Mapping[str, Any]) -> bool:
        condition = resource.get("Condition")
        return condition is None or self.condition(key, str(condition))

    def condition(self, key: str, name: str) -> bool:
        cached = self._conditions.get((key, name))
        if cached is None:
            self._conditions[(key, name)] = True  # a cycle counts as true
            body = (self.template(key).get("Conditions") or {}).get(name)
            value = self.truth(key, body)
            cached = self._conditions[(key, name)] = True if value is None else value
        return cached

    def truth(self, key: str, node: Any) -> bool | None:
        """A condition's value; None when it cannot be known offline."""
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict) or len(node) != 1:
            return None
        ((fn, args),) = node.items()
        if fn == "Condition":
            return self.condition(key, str(args))
        if fn == "Fn::Equals" and isinstance(args, list) and len(args) == 2:
            left, right = (self.resolve(key, a) for a in args)
            if isinstance(left, (Unknown, dict)) or isinstance(right, (Unknown, dict)):
                return None
            return str(left) == str(right)
        if fn == "Fn::Not" and isinstance(args, list) and len(args) == 1:
            inner = self.truth(key, args[0])
            return None if inner is None else not inner
        if fn in ("Fn::And", "Fn::Or") and isinstance(args, list):
            values = [self.truth(key, a) for a in args]
            if None in values:
                return None
            return all(values) if fn == "Fn::And" else any(values)
        return None

    def parameter(self, key: str, name: str) -> Any:
        declared = (self.template(key).get("Parameters") or {}).get(name) or {}
        if key == "":
            if name in self.root_parameters:
                return self.root_parameters[name]
        else:
            passed = (self.nested_stack_resource(key).get("Properties") or {}).get(
                "Parameters"
            ) or {}
            if name in passed:
                value = self.resolve("", passed[name])
                kind = str(declared.get("Type", ""))
                if kind.startswith("List<") or kind == "CommaDelimitedList":
                    return value if isinstance(value, list) else _split(value, ",")
                return value
        if "Default" in declared:
            default = declared["Default"]
            kind = str(declared.get("Type", ""))
            if kind.startswith("List<") or kind == "CommaDelimitedList":
                return _split(default, ",")
            return default
        return Unknown(f"parameter {key or 'root'}.{name}")

    def resolve(self, key: str, node: Any) -> Any:
        if isinstance(node, list):
            out: list[Any] = []
            for item in node:
                value = self.resolve(key, item)
                if value is _NO_VALUE:
                    continue
                out.append(value)
            return out
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {k: self.resolve(key, v) for k, v in node.items()}
        ((fn, args),) = node.items()
        if fn == "Ref":
            name = str(args)
            if name == "AWS::NoValue":
                return _NO_VALUE
            if name.startswith("AWS::"):
                return Unknown(name)
            if name in self.resources(key):
                return ResourceRef(key, name)
            return self.parameter(key, name)
        if fn == "Fn::GetAtt":
            parts = args.split(".", 1) if isinstance(args, str) else list(args)
            target, attribute = str(parts[0]), str(parts[1]) if len(parts) > 1 else ""
            if key == "" and attribute.startswith("Outputs.") and target in self.nested:
                output = (self.nested[target].get("Outputs") or {}).get(attribute[8:]) or {}
                return self.resolve(target, output.get("Value"))
            resource = self.resources(key).get(target, {})
            if attribute == "GroupId" and resource.get("Type") == "AWS::EC2::SecurityGroup":
                return ResourceRef(key, target)
            return Attribute(key, target, attribute)
        if fn == "Fn::If" and isinstance(args, list) and len(args) == 3:
            chosen = args[1] if self.condition(key, str(args[0])) else args[2]
            return self.resolve(key, chosen)
        if fn == "Fn::Join" and isinstance(args, list) and len(args) == 2:
            items = self.resolve(key, args[1])
            items = items if isinstance(items, list) else [items]
            if all(isinstance(i, (str, int)) for i in items):
                return str(args[0]).join(str(i) for i in items)
            return _flatten(items)  # split again by whoever reads it
        if fn == "Fn::Split" and isinstance(args, list) and len(args) == 2:
            return _split(self.resolve(key, args[1]), str(args[0]))
        if fn == "Fn::Select" and isinstance(args, list) and len(args) == 2:
            index, items = self.resolve(key, args[0]), self.resolve(key, args[1])
            if isinstance(items, list):
                try:
                    return items[int(index)]
                except (ValueError, TypeError, IndexError):
                    return Unknown("Fn::Select")
            return Unknown("Fn::Select")
        if fn == "Fn::Cidr" and isinstance(args, list) and len(args) == 3:
            block, count, bits = (self.resolve(key, a) for a in args)
            try:
                net = ipaddress.IPv4Network(str(block))
                prefix = 32 - int(bits)
                subnets = list(net.subnets(new_prefix=prefix))[: int(count)]
            except (ValueError, TypeError):
                return Unknown("Fn::Cidr")
            return [str(s) for s in subnets]
        if fn == "Fn::Sub":
            text = args if isinstance(args, str) else args[0] if isinstance(args, list) else ""
            return str(text) if "${" not in str(text) else Unknown(f"Fn::Sub {text}")
        if fn == "Fn::GetAZs":
            return ["az-a", "az-b", "az-c"]
        return Unknown(fn)


class _NoValueType:
    pass


_NO_VALUE = _NoValueType()


def _flatten(items: Iterable[Any]) -> list[Any]:
    out: list[Any] = []
    for item in items:
        out.extend(_flatten(item) if isinstance(item, list) else [item])
    return out


def _split(value: Any, delimiter: str) -> Any:
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return [part for part in value.split(delimiter) if part]
    return value


# --- The model: groups, rules, subnets, workloads, targets -------------------------------------


@dataclass(frozen=True)
class Rule:
    outbound: bool
    protocol: str  # "-1" (all), "tcp", "udp", "icmp", ...
    from_port: int
    to_port: int
    peer_group: str | None  # a group's name (Network/MskSecurityGroup)
    peer_cidr: Network | None
    where: str  # the resource that declares it
    other_peer: str | None = None  # a prefix list or IPv6 range: reported, never matched

    def allows_port(self, port: int) -> bool:
        if self.protocol in ("-1", "all"):
            return True
        if self.protocol not in ("tcp", "6"):
            return False
        return self.from_port <= port <= self.to_port

    def describe(self) -> str:
        ports = "all" if self.protocol in ("-1", "all") else (
            f"{self.protocol} {self.from_port}" if self.from_port == self.to_port
            else f"{self.protocol} {self.from_port}-{self.to_port}"
        )  # fmt: skip
        peer = self.peer_group or (str(self.peer_cidr) if self.peer_cidr else self.other_peer)
        return f"{'egress to' if self.outbound else 'ingress from'} {peer} ({ports})"


@dataclass
class Subnet:
    name: str
    cidr: Network | None
    internet: str  # "nat", "igw" or "none": where its 0.0.0.0/0 route goes


@dataclass
class Placement:
    """Where something runs: its security groups and subnets (names)."""

    groups: list[str]
    subnets: list[str]
    public_ip: bool = False


@dataclass
class Target:
    """Something that listens: a data store, the brokers, an endpoint, a task."""

    name: str
    port: int
    placement: Placement
    kind: str  # msk, proxy, aurora, redis, pushgateway, endpoint, task
    service: str = ""  # for endpoints: sqs, sts, lambda, ...


@dataclass
class Workload:
    name: str
    kind: str  # function, poller, matching, pushgateway, proxy
    placement: Placement
    needs: list[tuple[str, int]] = field(default_factory=list)  # (target kind, port)


@dataclass
class Model:
    vpc_cidr: Network | None
    groups: dict[str, list[Rule]]
    subnets: dict[str, Subnet]
    targets: list[Target]
    workloads: list[Workload]
    problems: list[str]


def _as_names(value: Any) -> list[str]:
    """Resource names from a resolved list (or one value); unknowns as their description."""
    items = value if isinstance(value, list) else [value]
    names: list[str] = []
    for item in _flatten(items):
        if isinstance(item, ResourceRef):
            names.append(item.name)
        elif isinstance(item, Unknown):
            names.append(f"<{item.what}>")
        elif item is not None and item is not _NO_VALUE:
            names.append(str(item))
    return names


def _port(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _network(value: Any) -> Network | None:
    try:
        return ipaddress.IPv4Network(str(value), strict=False)
    except (ValueError, TypeError):
        return None


def _rule(ev: Evaluator, key: str, where: str, props: Mapping[str, Any], outbound: bool) -> Rule:
    protocol = str(ev.resolve(key, props.get("IpProtocol", "-1"))).lower()
    if protocol == "-1":
        low, high = 0, 65535
    else:
        low = _port(ev.resolve(key, props.get("FromPort")), 0)
        high = _port(ev.resolve(key, props.get("ToPort")), low)
    group_key = "DestinationSecurityGroupId" if outbound else "SourceSecurityGroupId"
    peer_group: str | None = None
    if group_key in props:
        peer_names = _as_names(ev.resolve(key, props[group_key]))
        peer_group = peer_names[0] if peer_names else None
    cidr_key = "CidrIp"
    peer_cidr = _network(ev.resolve(key, props[cidr_key])) if cidr_key in props else None
    other = None
    for extra in ("CidrIpv6", "DestinationPrefixListId", "SourcePrefixListId"):
        if extra in props:
            other = f"{extra} {ev.resolve(key, props[extra])}"
    if cidr_key in props and peer_cidr is None:
        other = f"CidrIp {ev.resolve(key, props[cidr_key])!r}"
    return Rule(outbound, protocol, low, high, peer_group, peer_cidr, where, other)


def _placement_of(
    ev: Evaluator, key: str, groups: Any, subnets: Any, public: bool = False
) -> Placement:
    return Placement(
        _as_names(ev.resolve(key, groups)), _as_names(ev.resolve(key, subnets)), public
    )


def build_model(stack: Stack, root_parameters: Mapping[str, str]) -> Model:
    ev = Evaluator(stack, root_parameters)
    keys = ["", *stack.nested]
    problems: list[str] = []
    groups: dict[str, list[Rule]] = {}
    subnets: dict[str, Subnet] = {}
    vpc_cidr: Network | None = None

    # Groups and their rules
    for key in keys:
        for logical_id, resource in ev.resources(key).items():
            if not ev.exists(key, resource):
                continue
            props = resource.get("Properties") or {}
            kind = resource.get("Type")
            name = ResourceRef(key, logical_id).name
            if kind == "AWS::EC2::VPC":
                vpc_cidr = _network(ev.resolve(key, props.get("CidrBlock")))
            if kind == "AWS::EC2::SecurityGroup":
                rules = groups.setdefault(name, [])
                for entry in props.get("SecurityGroupIngress") or []:
                    rules.append(_rule(ev, key, name, entry, outbound=False))
                if "SecurityGroupEgress" in props:
                    for entry in props.get("SecurityGroupEgress") or []:
                        rules.append(_rule(ev, key, name, entry, outbound=True))
                else:  # AWS keeps its default allow-all egress rule
                    rules.append(
                        Rule(True, "-1", 0, 65535, None, ANYWHERE, f"{name} (default egress)")
                    )
    for key in keys:
        for logical_id, resource in ev.resources(key).items():
            kind = resource.get("Type")
            if kind not in ("AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress"):
                continue
            if not ev.exists(key, resource):
                continue
            props = resource.get("Properties") or {}
            owner = (_as_names(ev.resolve(key, props.get("GroupId"))) or ["?"])[0]
            rule = _rule(
                ev, key, ResourceRef(key, logical_id).name, props,
                outbound=kind == "AWS::EC2::SecurityGroupEgress",
            )  # fmt: skip
            groups.setdefault(owner, []).append(rule)

    # Subnets and where their default route goes
    for key in keys:
        resources = ev.resources(key)
        table_internet: dict[str, str] = {}
        for _logical_id, resource in resources.items():
            if resource.get("Type") != "AWS::EC2::Route" or not ev.exists(key, resource):
                continue
            props = resource.get("Properties") or {}
            if str(ev.resolve(key, props.get("DestinationCidrBlock"))) != "0.0.0.0/0":
                continue
            table = (_as_names(ev.resolve(key, props.get("RouteTableId"))) or ["?"])[0]
            if "NatGatewayId" in props:
                nat = ev.resolve(key, props["NatGatewayId"])
                nat_resource = (
                    ev.resources(nat.stack).get(nat.logical_id, {})
                    if isinstance(nat, ResourceRef) else {}
                )  # fmt: skip
                if not nat_resource or ev.exists(key, nat_resource):
                    table_internet[table] = "nat"
            elif "GatewayId" in props:
                table_internet[table] = "igw"
            else:
                table_internet.setdefault(table, "other")
        subnet_table: dict[str, str] = {}
        for _logical_id, resource in resources.items():
            if resource.get("Type") != "AWS::EC2::SubnetRouteTableAssociation":
                continue
            if not ev.exists(key, resource):
                continue
            props = resource.get("Properties") or {}
            subnet = (_as_names(ev.resolve(key, props.get("SubnetId"))) or ["?"])[0]
            table = (_as_names(ev.resolve(key, props.get("RouteTableId"))) or ["?"])[0]
            subnet_table[subnet] = table
        for logical_id, resource in resources.items():
            if resource.get("Type") != "AWS::EC2::Subnet" or not ev.exists(key, resource):
                continue
            name = ResourceRef(key, logical_id).name
            props = resource.get("Properties") or {}
            subnet_route = subnet_table.get(name)
            subnets[name] = Subnet(
                name,
                _network(ev.resolve(key, props.get("CidrBlock"))),
                table_internet.get(subnet_route, "none") if subnet_route else "none",
            )

    # Targets and workloads
    targets: list[Target] = []
    workloads: list[Workload] = []
    clusters: dict[str, Placement] = {}
    globals_vpc = ((stack.deployed.get("Globals") or {}).get("Function") or {}).get("VpcConfig")
    task_ports: dict[str, list[int]] = {}
    for key in keys:
        for logical_id, resource in ev.resources(key).items():
            if resource.get("Type") != "AWS::ECS::TaskDefinition":
                continue
            ports = [
                _port(ev.resolve(key, mapping.get("ContainerPort")), 0)
                for container in (resource.get("Properties") or {}).get("ContainerDefinitions")
                or []
                for mapping in container.get("PortMappings") or []
            ]
            task_ports[ResourceRef(key, logical_id).name] = ports

    function_needs = [("msk", KAFKA_IAM), ("record", POSTGRES), ("redis", REDIS),
                      ("endpoint", HTTPS), ("aws", HTTPS)]  # fmt: skip
    msk_events: list[tuple[str, Any, str]] = []  # (function, cluster reference, stack key)
    for key in keys:
        for logical_id, resource in ev.resources(key).items():
            if not ev.exists(key, resource):
                continue
            kind = resource.get("Type")
            props = resource.get("Properties") or {}
            name = ResourceRef(key, logical_id).name
            if kind == "AWS::MSK::ServerlessCluster":
                vpc = (props.get("VpcConfigs") or [{}])[0]
                clusters[name] = _placement_of(
                    ev, key, vpc.get("SecurityGroups"), vpc.get("SubnetIds")
                )
            elif kind == "AWS::MSK::Cluster":
                info = props.get("BrokerNodeGroupInfo") or {}
                clusters[name] = _placement_of(
                    ev, key, info.get("SecurityGroups"), info.get("ClientSubnets")
                )
            elif kind == "AWS::RDS::DBProxy":
                placement = _placement_of(
                    ev, key, props.get("VpcSecurityGroupIds"), props.get("VpcSubnetIds")
                )
                targets.append(Target(name, POSTGRES, placement, "proxy"))
                workloads.append(
                    Workload(name, "proxy", placement, [("aurora", POSTGRES),
                                                        ("endpoint:secretsmanager|aws", HTTPS)])
                )  # fmt: skip
            elif kind == "AWS::RDS::DBCluster":
                placement = _placement_of(ev, key, props.get("VpcSecurityGroupIds"), [])
                targets.append(
                    Target(name, _port(props.get("Port"), POSTGRES), placement, "aurora")
                )
            elif kind == "AWS::ElastiCache::ReplicationGroup":
                placement = _placement_of(ev, key, props.get("SecurityGroupIds"), [])
                targets.append(Target(name, _port(props.get("Port"), REDIS), placement, "redis"))
            elif kind == "AWS::EC2::VPCEndpoint":
                if str(ev.resolve(key, props.get("VpcEndpointType", "Gateway"))) != "Interface":
                    continue
                service = _endpoint_service(props.get("ServiceName"))
                placement = _placement_of(
                    ev, key, props.get("SecurityGroupIds"), props.get("SubnetIds")
                )
                targets.append(Target(name, HTTPS, placement, "endpoint", service))
            elif kind == "AWS::ECS::Service":
                vpc = (props.get("NetworkConfiguration") or {}).get("AwsvpcConfiguration") or {}
                placement = _placement_of(
                    ev, key, vpc.get("SecurityGroups"), vpc.get("Subnets"),
                    str(ev.resolve(key, vpc.get("AssignPublicIp", "DISABLED"))) == "ENABLED",
                )  # fmt: skip
                task = _as_names(ev.resolve(key, props.get("TaskDefinition")))
                ports = task_ports.get(task[0], []) if task else []
                for port in ports:
                    task_kind = "pushgateway" if port == PUSHGATEWAY else "task"
                    targets.append(Target(name, port, placement, task_kind))
                role = ((resource.get("Metadata") or {}).get("DeployCheck") or {}).get("network")
                if role == "scraper":
                    workloads.append(
                        Workload(name, "scraper", placement, [
                            ("pushgateway", PUSHGATEWAY), ("task", MATCHING_METRICS),
                            ("endpoint", HTTPS), ("aws", HTTPS),
                        ])
                    )  # fmt: skip
                elif PUSHGATEWAY in ports:
                    workloads.append(Workload(name, "pushgateway", placement, [("aws", HTTPS)]))
                else:
                    workloads.append(
                        Workload(name, "matching", placement, [
                            ("msk", KAFKA_IAM), ("redis", REDIS), ("pushgateway", PUSHGATEWAY),
                            ("endpoint", HTTPS), ("aws", HTTPS),
                        ])
                    )  # fmt: skip
            elif kind in ("AWS::Serverless::Function", "AWS::Lambda::Function"):
                vpc = props.get("VpcConfig", globals_vpc if kind.startswith("AWS::Serverless")
                                else None)  # fmt: skip
                if not vpc:
                    problems.append(f"{name}: runs outside the VPC (no VpcConfig)")
                    continue
                placement = _placement_of(
                    ev, key, vpc.get("SecurityGroupIds"), vpc.get("SubnetIds")
                )
                workloads.append(Workload(name, "function", placement, list(function_needs)))
                for event in (props.get("Events") or {}).values():
                    if isinstance(event, dict) and event.get("Type") == "MSK":
                        stream = (event.get("Properties") or {}).get("Stream")
                        msk_events.append((name, ev.resolve(key, stream), key))
            elif kind == "AWS::Lambda::EventSourceMapping":
                source = ev.resolve(key, props.get("EventSourceArn"))
                functions = _as_names(ev.resolve(key, props.get("FunctionName")))
                if _is_msk(ev, source):
                    msk_events.append((functions[0] if functions else name, source, key))

    for target_name, placement in clusters.items():
        targets.append(Target(target_name, KAFKA_IAM, placement, "msk"))
    for function, source, _key in msk_events:
        if not isinstance(source, Attribute):
            problems.append(f"{function}: its MSK trigger's cluster cannot be resolved ({source})")
            continue
        cluster = ResourceRef(source.stack, source.logical_id).name
        cluster_placement = clusters.get(cluster)
        if cluster_placement is None:
            problems.append(f"{function}: its MSK trigger names {cluster}, not a cluster here")
            continue
        workloads.append(
            Workload(
                f"{function} (MSK trigger's pollers, in {cluster}'s subnets and groups)",
                "poller",
                cluster_placement,
                [("msk", KAFKA_IAM), ("endpoint:lambda|aws", HTTPS),
                 ("endpoint:sts|aws", HTTPS)],
            )
        )  # fmt: skip
    return Model(vpc_cidr, groups, subnets, targets, workloads, problems)


def _endpoint_service(value: Any) -> str:
    """``com.amazonaws.${AWS::Region}.ecr.api`` -> ``ecr.api``."""
    text = value.get("Fn::Sub") if isinstance(value, dict) else value
    if isinstance(text, list):
        text = text[0]
    text = str(text or "")
    if "${AWS::Region}." in text:
        return text.split("${AWS::Region}.", 1)[1]
    parts = text.split(".")
    return ".".join(parts[3:]) if len(parts) > 3 else text


def _is_msk(ev: Evaluator, source: Any) -> bool:
    if not isinstance(source, Attribute):
        return False
    kind = ev.resources(source.stack).get(source.logical_id, {}).get("Type")
    return kind in ("AWS::MSK::Cluster", "AWS::MSK::ServerlessCluster")


# --- Reachability --------------------------------------------------------------------------


@dataclass
class Reach:
    ok: bool
    why: str


def _cidrs(model: Model, placement: Placement) -> list[Network] | None:
    """The address ranges a placement's interfaces take; None when its subnets are unknown (a
    data store placed by its subnet group: anywhere in the VPC)."""
    nets = [model.subnets[s].cidr for s in placement.subnets if s in model.subnets]
    if not placement.subnets or len(nets) != len(placement.subnets) or None in nets:
        return [model.vpc_cidr] if model.vpc_cidr else None
    return [n for n in nets if n is not None]


def _rule_matches(rule: Rule, groups: list[str], cidrs: list[Network] | None) -> bool:
    if rule.peer_group is not None:
        return rule.peer_group in groups
    if rule.peer_cidr is not None and cidrs:
        return all(c.subnet_of(rule.peer_cidr) for c in cidrs)
    return False


def reach(model: Model, source: Placement, target: Target) -> Reach:
    """Can ``source`` open a TCP connection to ``target`` on its port?"""
    out = [
        r for g in source.groups for r in model.groups.get(g, [])
        if r.outbound and r.allows_port(target.port)
        and _rule_matches(r, target.placement.groups, _cidrs(model, target.placement))
    ]  # fmt: skip
    into = [
        r for g in target.placement.groups for r in model.groups.get(g, [])
        if not r.outbound and r.allows_port(target.port)
        and _rule_matches(r, source.groups, _cidrs(model, source))
    ]  # fmt: skip
    if not out and not into:
        return Reach(False, f"no egress from {_names(source.groups)} and no ingress into "
                            f"{_names(target.placement.groups)} on {target.port}")  # fmt: skip
    if not out:
        return Reach(False, f"no egress rule of {_names(source.groups)} allows tcp "
                            f"{target.port} to {_names(target.placement.groups)}")  # fmt: skip
    if not into:
        return Reach(False, f"no ingress rule of {_names(target.placement.groups)} allows tcp "
                            f"{target.port} from {_names(source.groups)}")  # fmt: skip
    return Reach(True, "")


def internet_https(model: Model, source: Placement) -> Reach:
    """HTTPS to AWS's public endpoints: egress 443 to 0.0.0.0/0 and every subnet's default
    route through a NAT gateway."""
    egress = [
        r for g in source.groups for r in model.groups.get(g, [])
        if r.outbound and r.allows_port(HTTPS) and r.peer_cidr == ANYWHERE
    ]  # fmt: skip
    no_nat = [s for s in source.subnets if model.subnets.get(s, Subnet(s, None, "none")).internet
              != "nat"]  # fmt: skip
    if not egress:
        return Reach(False, f"no egress rule of {_names(source.groups)} allows tcp 443 to "
                            "0.0.0.0/0")  # fmt: skip
    if no_nat:
        return Reach(False, f"subnets {', '.join(no_nat)} have no default route to a NAT gateway")
    return Reach(True, "")


def _names(groups: list[str]) -> str:
    return ", ".join(groups) if groups else "(no security group)"


def _record_kind(model: Model) -> str:
    """Where the functions reach the record: RDS Proxy, or Aurora itself in a profile without
    a proxy."""
    return "proxy" if any(t.kind == "proxy" for t in model.targets) else "aurora"


def _matching_targets(model: Model, kind: str) -> list[Target]:
    if kind == "record":
        kind = _record_kind(model)
    if kind.startswith("endpoint:"):
        service = kind.split(":", 1)[1].split("|", 1)[0]
        return [t for t in model.targets if t.kind == "endpoint" and t.service == service]
    return [t for t in model.targets if t.kind == kind]


def contract_problems(model: Model) -> list[str]:
    problems = list(model.problems)
    # 1. every need met
    for workload in model.workloads:
        for kind, port in workload.needs:
            fallback_to_aws = kind.endswith("|aws")
            kind = kind.removesuffix("|aws")
            if kind == "aws":
                result = internet_https(model, workload.placement)
                endpoints = [t for t in model.targets if t.kind == "endpoint"
                             and reach(model, workload.placement, t).ok]  # fmt: skip
                if not result.ok and not endpoints:
                    problems.append(
                        f"{workload.name}: cannot reach AWS APIs over HTTPS "
                        f"(no reachable interface endpoint, and {result.why})"
                    )
                continue
            targets = _matching_targets(model, kind)
            if not targets:
                if fallback_to_aws:
                    result = internet_https(model, workload.placement)
                    if not result.ok:
                        service = kind.split(":", 1)[1]
                        problems.append(
                            f"{workload.name}: cannot reach {service} (no {service} interface "
                            f"endpoint, and no NAT path: {result.why})"
                        )
                elif kind == "endpoint":
                    pass  # no interface endpoints at all: the NAT path ("aws") is checked
                else:
                    problems.append(f"{workload.name}: needs {kind} on {port}, none declared")
                continue
            for target in targets:
                result = reach(model, workload.placement, target)
                if not result.ok:
                    problems.append(
                        f"{workload.name} cannot reach {target.name} on {target.port}: {result.why}"
                    )
    # 2. nothing else between workloads and the stores, brokers and tasks
    for workload in model.workloads:
        needed = {k.split(":", 1)[0].removesuffix("|aws") for k, _ in workload.needs}
        if "record" in needed:
            needed.add(_record_kind(model))
        for target in model.targets:
            if target.kind in needed or target.kind == "endpoint":
                continue
            if (
                target.placement.groups
                and set(target.placement.groups) == set(workload.placement.groups)
                and workload.kind != "poller"
            ):
                continue  # a task reaching itself
            if reach(model, workload.placement, target).ok:
                problems.append(
                    f"{workload.name} can reach {target.name} on {target.port}, which it "
                    "does not need"
                )
    # 3. no ingress from outside the VPC; 0.0.0.0/0 egress only for HTTPS from workloads
    https_out = {g for w in model.workloads for g in w.placement.groups}
    for group, rules in sorted(model.groups.items()):
        for rule in rules:
            if rule.other_peer:
                problems.append(f"{rule.where}: {rule.describe()}: not checkable, use a "
                                "group or an IPv4 CIDR")  # fmt: skip
            if (
                not rule.outbound
                and rule.peer_cidr is not None
                and (model.vpc_cidr is None or not rule.peer_cidr.subnet_of(model.vpc_cidr))
            ):
                problems.append(f"{rule.where}: {group} {rule.describe()}: from outside the VPC")
            if rule.outbound and rule.peer_cidr == ANYWHERE:
                only_https = (
                    rule.protocol in ("tcp", "6") and rule.from_port == rule.to_port == HTTPS
                )
                if not only_https:
                    problems.append(f"{rule.where}: {group} {rule.describe()}: 0.0.0.0/0 egress "
                                    "beyond HTTPS")  # fmt: skip
                elif group not in https_out:
                    problems.append(f"{rule.where}: {group} {rule.describe()}: no workload in "
                                    "this group needs HTTPS out")  # fmt: skip
    # 4. nothing of Bourse in a public subnet or with a public address
    for workload in model.workloads:
        public = [s for s in workload.placement.subnets
                  if model.subnets.get(s) and model.subnets[s].internet == "igw"]  # fmt: skip
        if public:
            problems.append(f"{workload.name}: placed in public subnets {', '.join(public)}")
        if workload.placement.public_ip:
            problems.append(f"{workload.name}: assigns a public IP address")
        unknown = [g for g in workload.placement.groups if g not in model.groups]
        if unknown:
            problems.append(f"{workload.name}: security groups not found: {', '.join(unknown)}")
    return list(dict.fromkeys(problems))


# --- Profiles and the registered check --------------------------------------------------------


def profiles(stack: Stack) -> dict[str, dict[str, str]]:
    """Root parameters of each deploy profile in samconfig.toml beside template.yaml (its
    ``parameter_overrides``); the templates' defaults when there is none."""
    template_path = stack.files.get("template")
    found: dict[str, dict[str, str]] = {}
    if template_path:
        samconfig = Path(template_path).with_name("samconfig.toml")
        if samconfig.exists():
            config = tomllib.loads(samconfig.read_text())
            for env, sections in config.items():
                if env == "default" or not isinstance(sections, dict):
                    continue
                overrides = (
                    ((sections.get("deploy") or {}).get("parameters") or {})
                    .get("parameter_overrides")
                )  # fmt: skip
                if isinstance(overrides, str):
                    found[env] = dict(
                        part.split("=", 1) for part in shlex.split(overrides) if "=" in part
                    )
    return found or {"defaults": {}}


def problems_by_profile(stack: Stack) -> dict[str, list[str]]:
    return {
        name: contract_problems(build_model(stack, parameters))
        for name, parameters in profiles(stack).items()
    }


def check_network(stack: Stack) -> Iterator[Failure]:
    by_profile = problems_by_profile(stack)
    seen: dict[str, list[str]] = {}
    for profile, problems in by_profile.items():
        for problem in problems:
            seen.setdefault(problem, []).append(profile)
    for problem, where_seen in seen.items():
        scope = "" if len(where_seen) == len(by_profile) else f"[{', '.join(where_seen)}] "
        yield Failure("network", f"{scope}{problem}")


check(
    "network",
    "each function, MSK poller and task reaches every port it needs, and nothing "
    "else; no ingress from outside the VPC; 0.0.0.0/0 egress only for HTTPS",
)(check_network)
