"""Create in moto every table, queue, topic, bucket, key and secret that template.yaml declares.

template.yaml is the one definition: resources are read from it, resolved with Stage=local, and
created in dependency order. Only the properties moto understands are passed on (encryption,
PITR, lifecycle and the like are AWS's business, not the local stack's). Everything here is
idempotent, because moto forgets all on restart and `up` runs it every time.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from graphlib import TopologicalSorter
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from bourse.settings import Settings
from devstack.cfn import TEMPLATE, Resolver, load_template, local_resolver, references
from devstack.paths import REPO_ROOT, StackPaths
from devstack.redis_auth import (
    NESTED_STACK,
    SECRET_LOGICAL_ID,
    SECRET_OUTPUT,
    local_token,
    secret_string,
)

ClientFactory = Callable[[str], Any]
# Tags identify a KMS key across `up`s: keys have no name of their own to look them up by.
_KEY_TAG = "devstack:logical-id"


def _tags(props: dict[str, Any]) -> list[dict[str, str]]:
    return [{"Key": t["Key"], "Value": str(t["Value"])} for t in props.get("Tags", [])]


def _dynamodb_table(
    clients: ClientFactory, logical_id: str, props: dict[str, Any], r: Resolver
) -> list[str]:
    ddb = clients("dynamodb")
    name = props["TableName"]
    notes = []
    args: dict[str, Any] = {
        "TableName": name,
        "KeySchema": props["KeySchema"],
        "AttributeDefinitions": props["AttributeDefinitions"],
        "BillingMode": props.get("BillingMode", "PROVISIONED"),
    }
    if args["BillingMode"] == "PROVISIONED":
        args["ProvisionedThroughput"] = props["ProvisionedThroughput"]
    if props.get("GlobalSecondaryIndexes"):
        args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if props.get("SSESpecification", {}).get("SSEEnabled"):
        args["SSESpecification"] = {"Enabled": True}
    if props.get("StreamSpecification"):
        args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    try:
        table = ddb.create_table(**args)["TableDescription"]
        notes.append(f"created table {name}")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceInUseException":
            raise
        table = ddb.describe_table(TableName=name)["Table"]
        notes += _add_indexes(ddb, name, table, args)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        current = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        if current.get("TimeToLiveStatus") not in ("ENABLED", "ENABLING"):
            ddb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    pitr = props.get("PointInTimeRecoverySpecification", {})
    if pitr.get("PointInTimeRecoveryEnabled"):
        ddb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True},
        )
    r.refs[logical_id] = name
    r.attrs[(logical_id, "Arn")] = table["TableArn"]
    if "LatestStreamArn" in table:
        r.attrs[(logical_id, "StreamArn")] = table["LatestStreamArn"]
    return notes


def _add_indexes(ddb: Any, name: str, table: dict[str, Any], args: dict[str, Any]) -> list[str]:
    """Indexes the template added to a table moto already has (a running stack's `up`), one
    update each, as CloudFormation adds them."""
    have = {index["IndexName"] for index in table.get("GlobalSecondaryIndexes", [])}
    notes = []
    for index in args.get("GlobalSecondaryIndexes", []):
        if index["IndexName"] in have:
            continue
        update: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": args["AttributeDefinitions"],
            "GlobalSecondaryIndexUpdates": [{"Create": index}],
        }
        if args["BillingMode"] == "PROVISIONED":
            update["GlobalSecondaryIndexUpdates"][0]["Create"] = {
                "ProvisionedThroughput": args["ProvisionedThroughput"],
                **index,
            }
        ddb.update_table(**update)
        notes.append(f"added index {index['IndexName']} to table {name}")
    return notes


# CloudFormation property -> SQS attribute, for the attributes moto keeps.
_SQS_ATTRIBUTES = (
    "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout", "FifoQueue", "ContentBasedDeduplication", "SqsManagedSseEnabled",
    "KmsMasterKeyId", "RedrivePolicy", "RedriveAllowPolicy",
)  # fmt: skip


def _sqs_queue(
    clients: ClientFactory, logical_id: str, props: dict[str, Any], r: Resolver
) -> list[str]:
    sqs = clients("sqs")
    name = props["QueueName"]
    attributes = {}
    for key in _SQS_ATTRIBUTES:
        if key in props:
            value = props[key]
            if isinstance(value, dict):
                value = json.dumps(value)
            elif isinstance(value, bool):
                value = "true" if value else "false"
            attributes[key] = str(value)
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        notes = []
    except ClientError as exc:
        if "NonExistentQueue" not in exc.response["Error"]["Code"]:
            raise
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        notes = [f"created queue {name}"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    r.refs[logical_id] = url
    r.attrs.update({(logical_id, "Arn"): arn, (logical_id, "QueueName"): name,
                    (logical_id, "QueueUrl"): url})  # fmt: skip
    return notes


def _sqs_queue_policy(
    clients: ClientFactory, logical_id: str, props: dict[str, Any], r: Resolver
) -> list[str]:
    sqs = clients("sqs")
    for url in props["Queues"]:
        sqs.set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
        )
    r.refs[logical_id] = logical_id
    return []


def _sns_topic(
    clients: ClientFactory, logical_id: str, props: dict[str, Any], r: Resolver
) -> list[str]:
    sns = clients("sns")
    name = props["TopicName"]
    attributes: dict[str, str] = {
        k: str(props[k]) for k in ("KmsMasterKeyId", "DisplayName") if k in props
    }
    if props.get("FifoTopic"):
        attributes["FifoTopic"] = "true"
    # CreateTopic is idempotent: same name, same ARN.
    arn = sns.create_topic(Name=name, Attributes=attributes)["TopicArn"]
    for sub in props.get("Subscription", []):
        _subscribe(sns, arn, sub["Protocol"], sub["Endpoint"], {})
    r.refs[logical_id] = arn
    r.attrs.update({(logical_id, "TopicArn"): arn, (logical_id, "TopicName"): name})
    return []


def _subscribe(
    sns: Any, topic_arn: str, protocol: str, endpoint: str, attrs: dict[str, str]
) -> str:
    pages = sns.get_paginator("list_subscriptions_by_topic").paginate(TopicArn=topic_arn)
    for page in pages:
        for sub in page["Subscriptions"]:
            if sub["Protocol"] == protocol and sub["Endpoint"] == endpoint:
                return str(sub["SubscriptionArn"])
    return str(
        sns.subscribe(
            TopicArn=topic_arn, Protocol=protocol, Endpoint=endpoint, Attributes=attrs,
            ReturnSubscriptionArn=True,
        )["SubscriptionArn"]
    )  # fmt: skip


def _sns_subscription(
    clients: ClientFactory, logical_id: str, props: dict[str, Any], r: Resolver
) -> list[str]:
    attrs: dict[str, str] = {}
    if "RawMessageDelivery" in props:
        attrs["RawMessageDelivery"] = str(props["RawMessageDelivery"]).lower()
    for key in ("FilterPolicy", "RedrivePolicy"):
        if key in props:
            attrs[key] = json.dumps(props[key])
    if "FilterPolicyScope" in props:
        attrs["FilterPolicyScope"] = props["FilterPolicyScope"]
    arn = _subscribe(clients("sns"), props["TopicArn"], props["Protocol"], props["Endpoint"], attrs)
    r.refs[logical_id] = arn
    return []


def _s3_bucket(
    clients: ClientFactory, logical_id: str, props: dict[str, Any], r: Resolver
) -> list[str]:
    s3 = clients("s3")
    name = props["BucketName"]
    notes = []
    try:
        s3.head_bucket(Bucket=name)
    except ClientError:
        create: dict[str, Any] = {"Bucket": name}
        if r.pseudo["AWS::Region"] != "us-east-1":
            create["CreateBucketConfiguration"] = {"LocationConstraint": r.pseudo["AWS::Region"]}
        s3.create_bucket(**create)
        notes.append(f"created bucket {name}")
    if "VersioningConfiguration" in props:
        status = props["VersioningConfiguration"]["Status"]
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": status})
    if "BucketEncryption" in props:
        # CloudFormation and the S3 API spell the default-encryption key differently.
        rules = [
            {
                "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                **(
                    {"BucketKeyEnabled": rule["BucketKeyEnabled"]}
                    if "BucketKeyEnabled" in rule
                    else {}
                ),
            }
            for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        ]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(
            Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
        )
    r.refs[logical_id] = name
    r.attrs.update({(logical_id, "Arn"): f"arn:aws:s3:::{name}",
                    (logical_id, "DomainName"): f"{name}.s3.amazonaws.com"})  # fmt: skip
    return notes


def _kms_key(
    clients: ClientFactory, logical_id: str, props: dict[str, Any], r: Resolver
) -> list[str]:
    kms = clients("kms")
    notes = []
    key_id = None
    for page in kms.get_paginator("list_keys").paginate():
        for key in page["Keys"]:
            tags = kms.list_resource_tags(KeyId=key["KeyId"]).get("Tags", [])
            if {"TagKey": _KEY_TAG, "TagValue": logical_id} in tags:
                key_id = key["KeyId"]
    if key_id is None:
        create: dict[str, Any] = {
            "Tags": [{"TagKey": _KEY_TAG, "TagValue": logical_id}]
            + [{"TagKey": t["Key"], "TagValue": t["Value"]} for t in _tags(props)],
        }
        for key in ("Description", "KeySpec", "KeyUsage"):
            if key in props:
                create[key] = props[key]
        if "KeyPolicy" in props:
            create["Policy"] = json.dumps(props["KeyPolicy"])
        key_id = kms.create_key(**create)["KeyMetadata"]["KeyId"]
        if props.get("EnableKeyRotation"):
            kms.enable_key_rotation(KeyId=key_id)
        notes.append(f"created KMS key {logical_id}")
    arn = kms.describe_key(KeyId=key_id)["KeyMetadata"]["Arn"]
    r.refs[logical_id] = key_id
    r.attrs.update({(logical_id, "Arn"): arn, (logical_id, "KeyId"): key_id})
    return notes


def _kms_alias(
    clients: ClientFactory, logical_id: str, props: dict[str, Any], r: Resolver
) -> list[str]:
    kms = clients("kms")
    name = props["AliasName"]
    aliases = {
        a["AliasName"]: a.get("TargetKeyId")
        for page in kms.get_paginator("list_aliases").paginate()
        for a in page["Aliases"]
    }
    notes = []
    if name not in aliases:
        kms.create_alias(AliasName=name, TargetKeyId=props["TargetKeyId"])
        notes.append(f"created KMS alias {name}")
    elif aliases[name] != props["TargetKeyId"]:
        kms.update_alias(AliasName=name, TargetKeyId=props["TargetKeyId"])
    r.refs[logical_id] = name
    return notes


def _secret(
    clients: ClientFactory, logical_id: str, props: dict[str, Any], r: Resolver
) -> list[str]:
    sm = clients("secretsmanager")
    name = props.get("Name", logical_id)
    # A value the local stack must decide (the Redis AUTH token, which Redis already has):
    # set in place of the generated one, and again if moto kept an older one.
    preset = props.get(_PRESET_VALUE)
    notes = []
    try:
        arn = sm.describe_secret(SecretId=name)["ARN"]
        if preset is not None and sm.get_secret_value(SecretId=arn)["SecretString"] != preset:
            sm.put_secret_value(SecretId=arn, SecretString=preset)
            notes.append(f"updated secret {name}")
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        create: dict[str, Any] = {"Name": name}
        for key in ("Description", "KmsKeyId"):
            if key in props:
                create[key] = props[key]
        if preset is not None:
            create["SecretString"] = preset
        elif "SecretString" in props:
            create["SecretString"] = props["SecretString"]
        else:
            generate = props.get("GenerateSecretString", {})
            password = sm.get_random_password(
                PasswordLength=int(generate.get("PasswordLength", 32)),
                ExcludePunctuation=bool(generate.get("ExcludePunctuation", True)),
            )["RandomPassword"]
            if "SecretStringTemplate" in generate and "GenerateStringKey" in generate:
                body = json.loads(generate["SecretStringTemplate"])
                body[generate["GenerateStringKey"]] = password
                password = json.dumps(body)
            create["SecretString"] = password
        arn = sm.create_secret(**create)["ARN"]
        notes.append(f"created secret {name}")
    r.refs[logical_id] = arn
    r.attrs[(logical_id, "Id")] = arn
    return notes


# Not a CloudFormation property: how ensure_resources hands a secret its local value.
_PRESET_VALUE = "devstack:SecretString"

Handler = Callable[[ClientFactory, str, dict[str, Any], Resolver], list[str]]

HANDLERS: dict[str, Handler] = {
    "AWS::DynamoDB::Table": _dynamodb_table,
    "AWS::SQS::Queue": _sqs_queue,
    "AWS::SQS::QueuePolicy": _sqs_queue_policy,
    "AWS::SNS::Topic": _sns_topic,
    "AWS::SNS::Subscription": _sns_subscription,
    "AWS::S3::Bucket": _s3_bucket,
    "AWS::KMS::Key": _kms_key,
    "AWS::KMS::Alias": _kms_alias,
    "AWS::SecretsManager::Secret": _secret,
}


def local_resources(template: dict[str, Any], resolver: Resolver) -> dict[str, dict[str, Any]]:
    """The template's resources the local stack creates in moto (those with a handler and
    whose Condition holds), as logical id -> resource."""
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource["Type"] in HANDLERS
        and ("Condition" not in resource or resolver.condition(resource["Condition"]))
    }


def creation_order(resources: dict[str, dict[str, Any]]) -> list[str]:
    graph = TopologicalSorter[str]()
    for logical_id, resource in resources.items():
        depends = resource.get("DependsOn", [])
        needs = references(resource.get("Properties", {})) | set(
            [depends] if isinstance(depends, str) else depends
        )
        graph.add(logical_id, *(n for n in needs if n in resources))
    return list(graph.static_order())


def _implicit_roles(template: dict[str, Any], r: Resolver) -> None:
    """The execution role SAM makes for each function (``<Function>Role``), which key policies
    name (AdminSigningKey: only the admin function signs)."""
    account = r.pseudo["AWS::AccountId"]
    for logical_id, resource in template.get("Resources", {}).items():
        if resource["Type"] == "AWS::Serverless::Function":
            role = f"{logical_id}Role"
            r.refs.setdefault(role, role)
            r.attrs.setdefault((role, "Arn"), f"arn:aws:iam::{account}:role/{role}")


def ensure_resources(
    settings: Settings, clients: ClientFactory, template_path: Path = TEMPLATE
) -> list[str]:
    """Every resource, and the local operator's credentials (devstack/operators.py), which the
    gateway checks admin API signatures against: both are what `up` prepares."""
    from devstack.operators import credentials_path, ensure_operator_credentials

    template = load_template(template_path)
    resolver = local_resolver(template, settings.stage, settings.region)
    _implicit_roles(template, resolver)
    resources = local_resources(template, resolver)
    notes: list[str] = []
    if ensure_operator_credentials(settings):
        notes.append(f"created the local operator's credentials in {credentials_path(settings)}")
    for logical_id in creation_order(resources):
        resource = resources[logical_id]
        props = resolver.resolve(resource.get("Properties", {}))
        notes += HANDLERS[resource["Type"]](clients, logical_id, props, resolver)
    signing = [
        resolver.attrs[(logical_id, "Arn")]
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::KMS::Key"
        and resource.get("Properties", {}).get("KeyUsage") == "SIGN_VERIFY"
    ]
    notes += remember_signing_keys(settings, clients, signing)
    notes += _redis_auth_secret(settings, clients, template, resolver)
    return notes


def _redis_auth_secret(
    settings: Settings, clients: ClientFactory, template: dict[str, Any], parent: Resolver
) -> list[str]:
    """infra/data.yaml's Redis AUTH secret, from its declaration there, holding the local
    Redis's token: the local Redis stands in for that nested stack's replication group, so its
    secret is the one resource of that stack the local stack needs."""
    if NESTED_STACK not in template.get("Resources", {}):
        return []
    location = template["Resources"][NESTED_STACK]["Properties"]["Location"]
    nested = load_template(REPO_ROOT / location)
    resolver = local_resolver(nested, settings.stage, settings.region)
    declared = dict(nested["Resources"][SECRET_LOGICAL_ID]["Properties"])
    # Its key (DataKey) is one of the stack's own; encryption at rest is AWS's business.
    declared.pop("KmsKeyId", None)
    props = resolver.resolve(declared)
    props[_PRESET_VALUE] = secret_string(local_token(StackPaths.from_settings(settings)))
    notes = _secret(clients, SECRET_LOGICAL_ID, props, resolver)
    parent.attrs[(NESTED_STACK, SECRET_OUTPUT)] = resolver.refs[SECRET_LOGICAL_ID]
    return notes


def remember_signing_keys(
    settings: Settings, clients: ClientFactory, key_arns: list[str]
) -> list[str]:
    """Add the signing keys' public halves to ``Settings.admin_trusted_keys_file``.

    moto forgets its KMS keys at every `up` while Kafka keeps the command log: without the old
    keys' public halves the matching service could not verify the admin commands they signed
    when it replays the log, and would refuse to start (a forked history). A deployed stack
    keeps its key (DeletionPolicy Retain) and needs no such file.
    """
    if not settings.admin_trusted_keys_file or not key_arns:
        return []
    path = Path(settings.admin_trusted_keys_file)
    if not path.is_absolute():
        path = REPO_ROOT / path
    saved: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    kms = clients("kms")
    added = []
    for arn in key_arns:
        if arn not in saved:
            der = kms.get_public_key(KeyId=arn)["PublicKey"]
            saved[arn] = base64.b64encode(der).decode()
            added.append(arn)
    if not added:
        return []
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(saved, indent=1, sort_keys=True))
    tmp.replace(path)
    return [f"trusted admin signing key {arn} (kept in {path})" for arn in added]
