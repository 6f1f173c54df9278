"""template.yaml for tests: load it, and create its DynamoDB tables, S3 buckets and SQS queues in moto.

The resources are created from the template's own properties (``KeySchema``,
``AttributeDefinitions``, ``GlobalSecondaryIndexes``, bucket versioning/encryption, queue attributes), so
tests cannot drift from the infrastructure::

    server = ThreadedMotoServer(port=0); server.start()
    url = f"http://127.0.0.1:{server._server.server_port}"
    session = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing",
                            region_name="us-east-1")
    names = create_resources(session, endpoint_url=url)           # or pass clients one by one
    env = function_environment("ClassifyFunction", names)        # the Lambda's LABELWISE_* env, resolved

CloudFormation short tags (``!Ref``, ``!GetAtt``, ``!Sub``...) load as their long form
(``{"Ref": ...}``, ``{"Fn::GetAtt": [...]}``); :func:`resolve` turns the ones naming created resources
into their physical names.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "template.yaml"

TABLE = "AWS::DynamoDB::Table"
BUCKET = "AWS::S3::Bucket"
QUEUE = "AWS::SQS::Queue"
FUNCTION = "AWS::Serverless::Function"


# --------------------------------------------------------------------------------------- loading
class CfnLoader(yaml.SafeLoader):
    """SafeLoader that understands CloudFormation's short-form intrinsic functions."""


_SHORT_TAGS = {
    "Ref": "Ref",
    "Condition": "Condition",
    **{
        name: f"Fn::{name}"
        for name in (
            "And",
            "Base64",
            "Cidr",
            "Equals",
            "FindInMap",
            "GetAZs",
            "If",
            "ImportValue",
            "Join",
            "Not",
            "Or",
            "Select",
            "Split",
            "Sub",
            "Transform",
            "Length",
            "ToJsonString",
        )
    },
}


def _construct(long_name: str) -> Any:
    def construct(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return {long_name: value}

    return construct


def _construct_getatt(loader: yaml.SafeLoader, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        logical_id, _, attribute = str(loader.construct_scalar(node)).partition(".")
        return {"Fn::GetAtt": [logical_id, attribute]}
    return {"Fn::GetAtt": loader.construct_sequence(node, deep=True)}


for _short, _long in _SHORT_TAGS.items():
    CfnLoader.add_constructor(f"!{_short}", _construct(_long))
CfnLoader.add_constructor("!GetAtt", _construct_getatt)


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as plain data (short tags in long form). A fresh copy on every call."""
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=CfnLoader)
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a mapping")
    return data


@lru_cache(maxsize=4)
def _cached(path: Path) -> dict[str, Any]:
    return load_template(path)


def resources(template: Mapping[str, Any], resource_type: str) -> dict[str, dict[str, Any]]:
    """``{logical id: resource}`` of one type, in template order."""
    return {
        logical_id: resource
        for logical_id, resource in template.get("Resources", {}).items()
        if resource.get("Type") == resource_type
    }


# --------------------------------------------------------------------------------------- resolving
@dataclass
class CreatedResources:
    """Physical names of what :func:`create_resources` made, by logical id."""

    tables: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> queue URL
    queue_arns: dict[str, str] = field(default_factory=dict)

    @property
    def refs(self) -> dict[str, str]:
        """What ``!Ref <logical id>`` evaluates to (table name, bucket name, queue URL)."""
        return {**self.tables, **self.buckets, **self.queues}

    @property
    def table_name(self) -> str:
        return _only(self.tables, "table")

    @property
    def bucket_name(self) -> str:
        return _only(self.buckets, "bucket")


def _only(mapping: Mapping[str, str], what: str) -> str:
    if len(mapping) != 1:
        raise LookupError(f"expected exactly one {what}, have {sorted(mapping)}")
    return next(iter(mapping.values()))


#: What ``{"Ref": "AWS::NoValue"}`` evaluates to (also through ``Fn::If``): the key or item is dropped.
_NO_VALUE = object()


def parameter_values(
    template: Mapping[str, Any], overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Parameter values as CloudFormation would see them: defaults, then ``overrides``."""
    values = {
        name: str(spec["Default"])
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }
    return {**values, **(overrides or {})}


def evaluate_conditions(
    template: Mapping[str, Any], parameters: Mapping[str, str] | None = None
) -> dict[str, bool]:
    """Evaluate the template's ``Conditions`` (``Fn::Equals/Not/And/Or``, ``Condition``) for the given
    parameter values (default: the parameters' defaults)."""
    params = parameter_values(template, parameters)
    return _Conditions(template.get("Conditions", {}), params).all()


class _Conditions:
    """:func:`evaluate_conditions`' state: the definitions and the conditions decided so far."""

    def __init__(self, definitions: Mapping[str, Any], params: Mapping[str, str]) -> None:
        self.definitions = definitions
        self.params = params
        self.results: dict[str, bool] = {}

    def all(self) -> dict[str, bool]:
        for name in self.definitions:
            self.condition(name)
        return self.results

    def condition(self, name: str) -> bool:
        if name not in self.results:
            self.results[name] = self.truth(self.definitions[name])
        return self.results[name]

    def truth(self, expr: Any) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            ((fn, args),) = expr.items()
            if fn == "Condition":
                return self.condition(args)
            if fn == "Fn::Equals":
                left, right = (resolve(a, self.params) for a in args)
                return str(left) == str(right)
            if fn in _LOGICAL:
                return _LOGICAL[fn](self.truth(a) for a in args)
        raise ValueError(f"cannot evaluate condition {expr!r}")


#: ``Fn::Not`` (one argument), ``Fn::And``, ``Fn::Or`` over their arguments' truth.
_LOGICAL: dict[str, Callable[[Iterator[bool]], bool]] = {
    "Fn::Not": lambda values: not next(values),
    "Fn::And": all,
    "Fn::Or": any,
}


def resolve(
    value: Any,
    refs: Mapping[str, str],
    attributes: Mapping[tuple[str, str], str] | None = None,
    region: str = "us-east-1",
    account: str = "123456789012",
    conditions: Mapping[str, bool] | None = None,
) -> Any:
    """Evaluate ``Ref``/``Fn::GetAtt``/``Fn::Sub``/``Fn::Join`` over ``refs`` (logical id or parameter ->
    value) and ``attributes`` ((logical id, attribute) -> value), and ``Fn::If`` over ``conditions``
    (see :func:`evaluate_conditions`); ``AWS::NoValue`` removes the key or list item. Anything unknown is
    returned unchanged."""
    pseudo = {
        "AWS::Region": region,
        "AWS::AccountId": account,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": "labelwise",
    }
    result = _Resolver(refs, attributes or {}, conditions or {}, pseudo).go(value)
    return None if result is _NO_VALUE else result


@dataclass(frozen=True)
class _Resolver:
    """:func:`resolve`'s walk: one method per intrinsic function."""

    refs: Mapping[str, str]
    attributes: Mapping[tuple[str, str], str]
    conditions: Mapping[str, bool]
    pseudo: Mapping[str, str]

    def go(self, v: Any) -> Any:
        if isinstance(v, list):
            return [x for x in (self.go(x) for x in v) if x is not _NO_VALUE]
        if not isinstance(v, dict):
            return v
        intrinsic = _INTRINSICS.get(next(iter(v))) if len(v) == 1 else None
        return intrinsic(self, v) if intrinsic is not None else self.mapping(v)

    def mapping(self, v: dict[str, Any]) -> dict[str, Any]:
        return {k: x for k, x in ((k, self.go(x)) for k, x in v.items()) if x is not _NO_VALUE}

    def ref(self, v: dict[str, Any]) -> Any:
        name = v["Ref"]
        if name == "AWS::NoValue":
            return _NO_VALUE
        return self.refs.get(name, self.pseudo.get(name, v))

    def if_(self, v: dict[str, Any]) -> Any:
        name, if_true, if_false = v["Fn::If"]
        if name not in self.conditions:
            return v
        return self.go(if_true if self.conditions[name] else if_false)

    def get_att(self, v: dict[str, Any]) -> Any:
        logical_id, attribute = v["Fn::GetAtt"]
        return self.attributes.get((logical_id, attribute), v)

    def join(self, v: dict[str, Any]) -> Any:
        sep, parts = v["Fn::Join"]
        joined = self.go(parts)  # a CommaDelimitedList parameter's value is one comma-separated string
        resolved = joined.split(",") if isinstance(joined, str) else [self.go(p) for p in parts]
        return sep.join(resolved) if all(isinstance(p, str) for p in resolved) else v

    def sub(self, v: dict[str, Any]) -> Any:
        if not isinstance(v["Fn::Sub"], str):
            return self.mapping(v)
        text: str = v["Fn::Sub"]
        for name, val in {**self.pseudo, **self.refs}.items():
            text = text.replace("${" + name + "}", val)
        for (logical_id, attribute), val in self.attributes.items():
            text = text.replace("${" + f"{logical_id}.{attribute}" + "}", val)
        return text


_INTRINSICS: dict[str, Callable[[_Resolver, dict[str, Any]], Any]] = {
    "Ref": _Resolver.ref,
    "Fn::If": _Resolver.if_,
    "Fn::GetAtt": _Resolver.get_att,
    "Fn::Join": _Resolver.join,
    "Fn::Sub": _Resolver.sub,
}


def function_environment(
    function_id: str,
    created: CreatedResources,
    template: Mapping[str, Any] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment Lambda would give ``function_id``: Globals merged with the function's own
    variables, references to created resources and parameters resolved (``LABELWISE_TABLE_NAME``
    etc.), ``Fn::If`` decided by the conditions for ``parameters`` (default: parameter defaults)."""
    template = template if template is not None else _cached(TEMPLATE_PATH)
    global_env = template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
    function = template["Resources"][function_id]
    own_env = function.get("Properties", {}).get("Environment", {}).get("Variables", {})
    env = resolve(
        {**global_env, **own_env},
        {**parameter_values(template, parameters), **created.refs},
        {(q, "Arn"): arn for q, arn in created.queue_arns.items()},
        conditions=evaluate_conditions(template, parameters),
    )
    unresolved = {k: v for k, v in env.items() if not isinstance(v, str)}
    if unresolved:
        raise ValueError(f"{function_id}: cannot resolve environment {unresolved}")
    return dict(env)


# --------------------------------------------------------------------------------------- creating
def _client(client_or_resource: Any) -> Any:
    """A boto3 client from a client or a service resource."""
    meta = getattr(client_or_resource, "meta", None)
    return getattr(meta, "client", client_or_resource)


def _physical_name(prefix: str, logical_id: str, names: Mapping[str, str] | None) -> str:
    if names and logical_id in names:
        return names[logical_id]
    return f"{prefix}-{logical_id.lower()}-{uuid.uuid4().hex[:8]}"


def create_tables(
    dynamodb: Any,
    template: Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
    prefix: str = "test",
) -> dict[str, str]:
    """Create every ``AWS::DynamoDB::Table`` of the template; returns logical id -> table name.

    ``dynamodb`` is a boto3 DynamoDB client or resource (e.g. pointed at a moto server)."""
    client = _client(dynamodb)
    template = template if template is not None else _cached(TEMPLATE_PATH)
    created: dict[str, str] = {}
    for logical_id, resource in resources(template, TABLE).items():
        props = resource.get("Properties", {})
        name = _physical_name(prefix, logical_id, names)
        billing = props.get("BillingMode", "PROVISIONED")
        throughput = {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
        kwargs: dict[str, Any] = {
            "TableName": name,
            "AttributeDefinitions": props["AttributeDefinitions"],
            "KeySchema": props["KeySchema"],
            "BillingMode": billing,
        }
        if billing == "PROVISIONED":
            kwargs["ProvisionedThroughput"] = props.get("ProvisionedThroughput", throughput)
        gsis = []
        for gsi in props.get("GlobalSecondaryIndexes", []):
            index = {k: gsi[k] for k in ("IndexName", "KeySchema", "Projection")}
            if billing == "PROVISIONED":
                index["ProvisionedThroughput"] = gsi.get("ProvisionedThroughput", throughput)
            gsis.append(index)
        if gsis:
            kwargs["GlobalSecondaryIndexes"] = gsis
        if props.get("LocalSecondaryIndexes"):
            kwargs["LocalSecondaryIndexes"] = props["LocalSecondaryIndexes"]
        if props.get("StreamSpecification"):
            kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
        if props.get("SSESpecification", {}).get("SSEEnabled"):
            kwargs["SSESpecification"] = {"Enabled": True}
        client.create_table(**kwargs)
        client.get_waiter("table_exists").wait(TableName=name)
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        created[logical_id] = name
    return created


def create_buckets(
    s3: Any,
    template: Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
    prefix: str = "test",
) -> dict[str, str]:
    """Create every ``AWS::S3::Bucket`` (versioning, encryption, public access block as in the template);
    returns logical id -> bucket name. ``s3`` is a boto3 S3 client or resource."""
    client = _client(s3)
    template = template if template is not None else _cached(TEMPLATE_PATH)
    region = client.meta.region_name or "us-east-1"
    created: dict[str, str] = {}
    for logical_id, resource in resources(template, BUCKET).items():
        props = resource.get("Properties", {})
        name = _physical_name(prefix, logical_id, names)
        kwargs: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
        client.create_bucket(**kwargs)
        versioning = props.get("VersioningConfiguration")
        if versioning:
            client.put_bucket_versioning(
                Bucket=name, VersioningConfiguration={"Status": versioning["Status"]}
            )
        encryption = props.get("BucketEncryption")
        if encryption:
            # CloudFormation says ServerSideEncryptionByDefault where the S3 API says Apply...ByDefault.
            rules = [
                {
                    ("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                    for k, v in rule.items()
                }
                for rule in encryption["ServerSideEncryptionConfiguration"]
            ]
            client.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
        public_access = props.get("PublicAccessBlockConfiguration")
        if public_access:
            client.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=public_access)
        created[logical_id] = name
    return created


_QUEUE_ATTRIBUTES = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "SqsManagedSseEnabled",
)


def create_queues(
    sqs: Any,
    template: Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
    prefix: str = "test",
) -> tuple[dict[str, str], dict[str, str]]:
    """Create every ``AWS::SQS::Queue``; dead-letter queues first so ``RedrivePolicy`` resolves.
    Returns (logical id -> queue URL, logical id -> queue ARN). ``sqs`` is a boto3 SQS client or resource."""
    client = _client(sqs)
    template = template if template is not None else _cached(TEMPLATE_PATH)
    queues = resources(template, QUEUE)
    # Queues referenced by another queue's RedrivePolicy are created first.
    order = sorted(queues, key=lambda q: "RedrivePolicy" in queues[q].get("Properties", {}))
    urls: dict[str, str] = {}
    arns: dict[str, str] = {}
    for logical_id in order:
        props = queues[logical_id].get("Properties", {})
        name = _physical_name(prefix, logical_id, names)
        if props.get("FifoQueue") and not name.endswith(".fifo"):
            name += ".fifo"
        attributes = {
            k: str(props[k]).lower() if isinstance(props[k], bool) else str(props[k])
            for k in _QUEUE_ATTRIBUTES
            if k in props
        }
        if "RedrivePolicy" in props:
            policy = resolve(props["RedrivePolicy"], {}, {(q, "Arn"): arn for q, arn in arns.items()})
            attributes["RedrivePolicy"] = _json(policy)
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        urls[logical_id] = url
        arns[logical_id] = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
    return urls, arns


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def create_resources(
    session: Any,
    endpoint_url: str | None = None,
    template: Mapping[str, Any] | None = None,
    prefix: str = "test",
) -> CreatedResources:
    """Create the template's tables, buckets and queues with clients from ``session`` (a boto3 Session)
    at ``endpoint_url`` (a moto server)."""
    template = template if template is not None else _cached(TEMPLATE_PATH)
    created = CreatedResources()
    created.tables = create_tables(
        session.client("dynamodb", endpoint_url=endpoint_url), template, prefix=prefix
    )
    created.buckets = create_buckets(session.client("s3", endpoint_url=endpoint_url), template, prefix=prefix)
    if resources(template, QUEUE):
        created.queues, created.queue_arns = create_queues(
            session.client("sqs", endpoint_url=endpoint_url), template, prefix=prefix
        )
    return created


# --------------------------------------------------------------------------------------- expanding
SAM_PYTHON = REPO_ROOT / ".tools" / "sam" / "bin" / "python"

_TRANSLATE = """
import json, sys
from samtranslator.translator.transform import transform

class NoManagedPolicies:  # policies are named by ARN in the template; nothing to look up in IAM
    def load(self):
        return {}

template = json.load(sys.stdin)
for resource in template["Resources"].values():  # local code paths: what `sam validate` substitutes
    for uri in ("CodeUri", "ContentUri"):
        if isinstance(resource.get("Properties", {}).get(uri), str):
            resource["Properties"][uri] = "s3://bucket/value"
parameters = {"AWS::Region": "us-east-1", "AWS::AccountId": "123456789012", "AWS::Partition": "aws"}
print(json.dumps(transform(template, parameters, NoManagedPolicies())))
"""


def sam_translate(path: Path = TEMPLATE_PATH, python: Path = SAM_PYTHON) -> dict[str, Any] | None:
    """The template expanded by the SAM translator (``AWS::Serverless::*`` -> plain CloudFormation:
    IAM roles with the policy templates' statements), run in the SAM CLI's venv (``make sam-tool``).
    None when that venv is absent."""
    import subprocess

    if not python.exists():
        return None
    source = json.dumps(load_template(path))
    result = subprocess.run(
        [str(python), "-c", _TRANSLATE],
        input=source,
        env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"SAM translation failed: {result.stderr[-2000:]}")
    expanded: dict[str, Any] = json.loads(result.stdout)
    return expanded
