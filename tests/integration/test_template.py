"""template.yaml: it parses, lints, validates with SAM, keeps least privilege, routes each path to the
right function, and its own resource definitions create working moto tables and buckets."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from labelwise.settings import Settings
from tests.support.moto_server import moto_server
from tests.support.template import (
    BUCKET,
    FUNCTION,
    REPO_ROOT,
    TABLE,
    TEMPLATE_PATH,
    CreatedResources,
    create_resources,
    evaluate_conditions,
    function_environment,
    load_template,
    resolve,
    resources,
    sam_translate,
)

SAM = REPO_ROOT / ".tools" / "sam" / "bin" / "sam"

ROUTES = {
    ("POST", "/v1/classify"): "ClassifyFunction",
    ("POST", "/v1/embeddings"): "ClassifyFunction",
    ("POST", "/v1/train"): "TrainFunction",
    ("GET", "/v1/classifiers"): "TrainFunction",
    ("POST", "/v1/classifiers"): "TrainFunction",
    ("GET", "/v1/classifiers/{classifier_id}"): "TrainFunction",
    ("DELETE", "/v1/classifiers/{classifier_id}"): "TrainFunction",
    ("GET", "/health"): "ClassifyFunction",
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def _policies(
    template: dict[str, Any], function_id: str, parameters: dict[str, str] | None = None
) -> list[Any]:
    """A function's policies with ``Fn::If`` decided for ``parameters`` (default: parameter defaults)."""
    policies = template["Resources"][function_id]["Properties"]["Policies"]
    policies = policies if isinstance(policies, list) else [policies]
    resolved = resolve(policies, {}, conditions=evaluate_conditions(template, parameters))
    assert isinstance(resolved, list)
    return resolved


def _policy_templates(
    template: dict[str, Any], function_id: str, parameters: dict[str, str] | None = None
) -> dict[str, Any]:
    """SAM policy templates (``{"DynamoDBReadPolicy": {...}}``) of a function, by name."""
    return {
        name: args
        for policy in _policies(template, function_id, parameters)
        if isinstance(policy, dict) and "Statement" not in policy
        for name, args in policy.items()
    }


def _inline_statements(
    template: dict[str, Any], function_id: str, parameters: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    return [
        statement
        for policy in _policies(template, function_id, parameters)
        if isinstance(policy, dict) and "Statement" in policy
        for statement in policy["Statement"]
    ]


# ------------------------------------------------------------------------------------------- parse
def test_template_parses_with_the_expected_resources(template: dict[str, Any]) -> None:
    # Given the template loaded with CloudFormation short tags
    # When we look at its resources
    types = {logical_id: r["Type"] for logical_id, r in template["Resources"].items()}

    # Then it is a SAM template with the API, layer, two functions, table and bucket
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    assert types["HttpApi"] == "AWS::Serverless::HttpApi"
    assert types["ModelLayer"] == "AWS::Serverless::LayerVersion"
    assert types["ClassifyFunction"] == types["TrainFunction"] == FUNCTION
    assert types["LabelwiseTable"] == TABLE
    assert types["LabelwiseBucket"] == BUCKET
    assert set(template["Outputs"]) >= {"ApiUrl", "TableName", "BucketName"}


def test_globals_configure_the_runtime_and_the_environment(template: dict[str, Any]) -> None:
    # Given the Globals section
    function = template["Globals"]["Function"]

    # Then every function is python3.12 on x86_64, traced, with the model layer and the store wiring
    assert function["Runtime"] == "python3.12"
    assert function["Architectures"] == ["x86_64"]
    assert function["Tracing"] == "Active"
    assert function["Timeout"] == 30
    assert function["Layers"] == [{"Ref": "ModelLayer"}]
    env = function["Environment"]["Variables"]
    assert env["LABELWISE_STORE"] == "aws"
    assert env["LABELWISE_TABLE_NAME"] == {"Ref": "LabelwiseTable"}
    assert env["LABELWISE_BUCKET_NAME"] == {"Ref": "LabelwiseBucket"}
    assert env["LABELWISE_MODEL_DIR"] == "/opt/models"
    assert env["POWERTOOLS_SERVICE_NAME"] == "labelwise"
    assert env["POWERTOOLS_METRICS_NAMESPACE"] == "labelwise"


def test_every_function_and_the_layer_build_with_their_makefile(template: dict[str, Any]) -> None:
    # Given the functions and the layer
    built = {**resources(template, FUNCTION), **resources(template, "AWS::Serverless::LayerVersion")}

    # Then each one has a makefile build whose Makefile defines its build-<LogicalId> target
    for logical_id, resource in built.items():
        assert resource["Metadata"]["BuildMethod"] == "makefile", logical_id
        code_uri = resource["Properties"].get("CodeUri") or resource["Properties"]["ContentUri"]
        makefile = (REPO_ROOT / code_uri / "Makefile").read_text(encoding="utf-8")
        assert f"build-{logical_id}:" in makefile, logical_id


# -------------------------------------------------------------------------------------------- lint
def test_cfn_lint_reports_nothing() -> None:
    # Given cfn-lint's Python API
    from cfnlint.api import lint

    # When the template is linted in the regions we document deploying to (cfn-lint's CLI default is
    # us-east-1; not every region has every resource type, e.g. SageMaker in me-central-1)
    matches = lint(TEMPLATE_PATH.read_text(encoding="utf-8"), regions=["us-east-1", "eu-west-1"])

    # Then there are no errors or warnings (what the cfn-lint CLI fails on; informational
    # findings such as I4010 "no Context block" are advisory)
    assert [str(m) for m in matches if m.rule.severity in ("error", "warning")] == []
    # And the stateful-resource policy check (I3011) is satisfied too
    assert [str(m) for m in matches if m.rule.id == "I3011"] == []


@pytest.mark.slow
def test_sam_validate_lint_passes() -> None:
    # Given the SAM CLI in its own venv (make sam-tool)
    if not SAM.exists():
        pytest.skip(f"SAM CLI not installed at {SAM.relative_to(REPO_ROOT)}: run `make sam-tool`")
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}

    # When the template is validated (SAM transform, then cfn-lint through SAM)
    for extra in ([], ["--lint"]):
        result = subprocess.run(
            [str(SAM), "validate", *extra, "--region", "us-east-1", "--template-file", str(TEMPLATE_PATH)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

        # Then SAM says it is valid
        assert result.returncode == 0, result.stdout + result.stderr
        assert "is a valid SAM Template" in result.stdout + result.stderr


# ------------------------------------------------------------------------------- least privilege
def test_classify_function_reads_and_only_counts_usage_on_key_items(template: dict[str, Any]) -> None:
    # Given the classify function's policies
    policies = _policy_templates(template, "ClassifyFunction")
    statements = _inline_statements(template, "ClassifyFunction")

    # Then it has read-only templates on the table and the bucket
    assert policies == {
        "DynamoDBReadPolicy": {"TableName": {"Ref": "LabelwiseTable"}},
        "S3ReadPolicy": {"BucketName": {"Ref": "LabelwiseBucket"}},
    }
    # And its only writes are UpdateItems of counters: usage on classifier items (pk CLF#...) and
    # quota counters on rate items (pk RATE#...), each limited to its own attributes
    by_sid = {statement["Sid"]: statement for statement in statements}
    assert set(by_sid) == {"ClassifierUsageCounters", "QuotaCounters"}
    expected = {
        "ClassifierUsageCounters": ("CLF#*", {"pk", "sk", "classify_count", "last_used_at"}),
        "QuotaCounters": ("RATE#*", {"pk", "sk", "requests", "tokens", "expires_at"}),
    }
    for sid, (leading, attributes) in expected.items():
        statement = by_sid[sid]
        assert statement["Effect"] == "Allow"
        assert statement["Action"] in ("dynamodb:UpdateItem", ["dynamodb:UpdateItem"])
        assert statement["Resource"] == {"Fn::GetAtt": ["LabelwiseTable", "Arn"]}
        assert statement["Condition"]["ForAllValues:StringLike"] == {"dynamodb:LeadingKeys": [leading]}
        assert set(statement["Condition"]["ForAllValues:StringEquals"]["dynamodb:Attributes"]) == attributes


def test_classify_function_may_invoke_only_its_own_endpoint_when_enabled(template: dict[str, Any]) -> None:
    # Given the optional SageMaker endpoint switched on
    if "EnableSageMakerEndpoint" not in template.get("Parameters", {}):
        pytest.skip("template has no optional SageMaker endpoint")
    enabled = {"EnableSageMakerEndpoint": "true"}

    # When the classify function's policies are evaluated for it
    statements = _inline_statements(template, "ClassifyFunction", enabled)
    policies = _policy_templates(template, "ClassifyFunction", enabled)

    # Then the only addition is InvokeEndpoint on that one endpoint
    assert set(policies) == {"DynamoDBReadPolicy", "S3ReadPolicy"}
    invoke = [s for s in statements if "sagemaker" in str(s["Action"])]
    assert len(invoke) == 1
    assert invoke[0]["Action"] in ("sagemaker:InvokeEndpoint", ["sagemaker:InvokeEndpoint"])
    assert invoke[0]["Resource"] == {"Ref": "EmbeddingEndpoint"}
    assert len(statements) == len(_inline_statements(template, "ClassifyFunction")) + 1


#: What each function may write: DynamoDB items by partition-key prefix (``dynamodb:LeadingKeys``, the
#: key layout of ``labelwise.storage.aws`` and ``labelwise.storage.aws_quota``) and S3 keys by prefix.
#: API keys (``KEY#``, ``KEYID#``) are written only by the admin CLI, with the operator's credentials.
WRITE_SCOPE = {
    "ClassifyFunction": ({"CLF#*", "RATE#*"}, set()),
    "TrainFunction": ({"CLF#*", "RATE#*"}, {"classifiers/*"}),
    "UploadsFunction": ({"CLF#*"}, {"results/*", "errors/*"}),
}
DYNAMODB_WRITES = {
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:PartiQLInsert",
    "dynamodb:PartiQLUpdate",
    "dynamodb:PartiQLDelete",
}
S3_OBJECT_WRITES = {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion", "s3:AbortMultipartUpload"}


def _actions(statement: dict[str, Any]) -> list[str]:
    action = statement.get("Action", [])
    return action if isinstance(action, list) else [action]


def _resource_list(statement: dict[str, Any]) -> list[Any]:
    resource = statement.get("Resource", [])
    return resource if isinstance(resource, list) else [resource]


def _object_suffix(resource: Any) -> str | None:
    """``classifiers/*`` of ``!Sub ${LabelwiseBucket.Arn}/classifiers/*`` (or of the SAM-expanded
    ``Fn::Sub`` with a variable map); None for anything that is not an object ARN of the bucket."""
    text: Any = resource
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        text = sub if isinstance(sub, str) else sub[0]
    if isinstance(text, str):
        for prefix in ("${LabelwiseBucket.Arn}/", "arn:${AWS::Partition}:s3:::${bucketName}/"):
            if text.startswith(prefix):
                return str(text[len(prefix) :])
    return None


def assert_least_privilege(function_id: str, statements: list[dict[str, Any]]) -> None:
    """Every write in ``statements`` stays inside ``WRITE_SCOPE[function_id]``; no bucket configuration."""
    leading_allowed, objects_allowed = WRITE_SCOPE[function_id]
    for statement in statements:
        if statement.get("Effect") != "Allow":
            continue
        actions = set(_actions(statement))
        # No bucket-level writes at all (lifecycle, policy, ACL, versioning, notification...)
        assert not {a for a in actions if a.startswith("s3:PutBucket") or a.startswith("s3:DeleteBucket")}, (
            function_id,
            statement,
        )
        assert "s3:PutLifecycleConfiguration" not in actions, (function_id, statement)
        if actions & DYNAMODB_WRITES:
            # DynamoDB writes only on the allowed partition-key prefixes
            leading = (
                statement.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys")
            )
            assert leading, (function_id, "DynamoDB write without a LeadingKeys condition", statement)
            assert set(leading) <= leading_allowed, (function_id, statement)
        if actions & S3_OBJECT_WRITES:
            # S3 object writes only under the allowed prefixes
            suffixes = {_object_suffix(r) for r in _resource_list(statement)}
            assert suffixes <= objects_allowed, (function_id, suffixes, statement)


def test_train_function_writes_only_classifier_and_rate_items_and_classifier_objects(
    template: dict[str, Any],
) -> None:
    # Given the train function's policies
    policies = _policy_templates(template, "TrainFunction")
    statements = _inline_statements(template, "TrainFunction")

    # Then it has no CRUD policy templates (they allow writing API-key items and bucket lifecycles)
    assert "DynamoDBCrudPolicy" not in policies and "S3CrudPolicy" not in policies
    assert set(policies) <= {"DynamoDBReadPolicy"}
    # And its writes are classifier items (CLF#), its quota counters (RATE#) and classifiers/* objects
    assert_least_privilege("TrainFunction", statements)
    writes = [s for s in statements if set(_actions(s)) & (DYNAMODB_WRITES | S3_OBJECT_WRITES)]
    leading = {
        key
        for s in writes
        for key in s.get("Condition", {}).get("ForAllValues:StringLike", {}).get("dynamodb:LeadingKeys", [])
    }
    assert leading == {"CLF#*", "RATE#*"}
    assert {_object_suffix(r) for s in writes for r in _resource_list(s) if _object_suffix(r)} == {
        "classifiers/*"
    }
    # And what the store does is allowed: create (PutItem), commit a version (UpdateItem), delete
    # (DeleteItem), list by owner (Query on gsi1), weights put/get/delete and listing under classifiers/
    actions = {a for s in statements for a in _actions(s)}
    assert {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"} <= actions
    assert {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:ListBucket"} <= actions
    (listing,) = [s for s in statements if "s3:ListBucket" in _actions(s)]
    assert listing["Condition"]["StringLike"]["s3:prefix"] == ["classifiers/*"]


def test_every_function_keeps_least_privilege(template: dict[str, Any]) -> None:
    # Given every function of the template, with and without the optional endpoint
    for parameters in ({}, {"EnableSageMakerEndpoint": "true"}):
        for function_id in resources(template, FUNCTION):
            policies = _policy_templates(template, function_id, parameters)
            # Then none uses a policy template that writes (only the read-only and SQS-send ones)
            assert set(policies) <= {"DynamoDBReadPolicy", "S3ReadPolicy", "SQSSendMessagePolicy"}, (
                function_id
            )
            # And every inline write stays in its scope
            assert_least_privilege(function_id, _inline_statements(template, function_id, parameters))


def _role_statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    """Every statement of an expanded role's inline policies, both branches of an ``Fn::If`` included."""
    policies: list[Any] = list(role.get("Policies", []))
    statements: list[dict[str, Any]] = []
    while policies:
        policy = policies.pop()
        if isinstance(policy, dict) and "Fn::If" in policy:
            policies += [branch for branch in policy["Fn::If"][1:] if branch != {"Ref": "AWS::NoValue"}]
        elif isinstance(policy, dict) and "PolicyDocument" in policy:
            statements += policy["PolicyDocument"]["Statement"]
    return statements


@pytest.mark.slow
def test_expanded_policies_keep_least_privilege() -> None:
    # Given the template expanded by the SAM translator (the IAM roles CloudFormation will create)
    expanded = sam_translate(TEMPLATE_PATH)
    if expanded is None:
        pytest.skip(f"SAM CLI not installed at {SAM.relative_to(REPO_ROOT)}: run `make sam-tool`")
    roles = {
        logical_id: r["Properties"]
        for logical_id, r in expanded["Resources"].items()
        if r["Type"] == "AWS::IAM::Role" and logical_id.endswith("FunctionRole")
    }
    assert set(roles) == {f"{f}Role" for f in WRITE_SCOPE}

    for role_id, role in roles.items():
        function_id = role_id.removesuffix("Role")
        statements = _role_statements(role)
        # Then every statement SAM produced (policy templates included) keeps the function's scope
        assert_least_privilege(function_id, statements)
        # And no managed policy other than logging, tracing and (the queue's consumer) SQS polling
        managed = {str(arn).rsplit("/", 1)[-1] for arn in role.get("ManagedPolicyArns", [])}
        allowed = {"AWSLambdaBasicExecutionRole", "AWSXrayWriteOnlyAccess"}
        if function_id == "UploadsFunction":
            allowed.add("AWSLambdaSQSQueueExecutionRole")
        assert managed <= allowed, (function_id, managed)

    # And the train role, expanded, writes only CLF#/RATE# items and classifiers/* objects
    train = _role_statements(roles["TrainFunctionRole"])
    writes = [s for s in train if set(_actions(s)) & (DYNAMODB_WRITES | S3_OBJECT_WRITES)]
    assert writes
    assert {a for s in train for a in _actions(s)} & {
        "dynamodb:BatchWriteItem",
        "s3:PutLifecycleConfiguration",
    } == set()


def test_no_policy_grants_wildcard_actions_or_resources(template: dict[str, Any]) -> None:
    # Given every function's inline statements
    for function_id in resources(template, FUNCTION):
        for statement in _inline_statements(template, function_id):
            # Then none allows "*" actions or resources
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert all("*" not in action for action in actions), (function_id, statement)
            assert statement["Resource"] != "*", (function_id, statement)


# ---------------------------------------------------------------------------------------- routes
def test_routes_map_to_the_right_functions(template: dict[str, Any]) -> None:
    # Given every HttpApi event of every function
    routes: dict[tuple[str, str], str] = {}
    for function_id, function in resources(template, FUNCTION).items():
        for event in function["Properties"].get("Events", {}).values():
            if event["Type"] == "HttpApi":
                props = event["Properties"]
                assert props["ApiId"] == {"Ref": "HttpApi"}
                routes[(props["Method"].upper(), props["Path"])] = function_id

    # Then classify goes to ClassifyFunction and everything about classifiers to TrainFunction
    assert routes == ROUTES


def test_http_api_throttling_and_data_protection(template: dict[str, Any]) -> None:
    res = template["Resources"]
    # Given the API: default route throttling comes from parameters
    settings = res["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingBurstLimit"] == {"Ref": "ThrottlingBurstLimit"}
    assert settings["ThrottlingRateLimit"] == {"Ref": "ThrottlingRateLimit"}
    # And the table is on-demand, encrypted, with point-in-time recovery and the single-table keys
    table = res["LabelwiseTable"]["Properties"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert {k["AttributeName"]: k["KeyType"] for k in table["KeySchema"]} == {"pk": "HASH", "sk": "RANGE"}
    (gsi,) = table["GlobalSecondaryIndexes"]
    assert gsi["IndexName"] == "gsi1"
    assert {k["AttributeName"]: k["KeyType"] for k in gsi["KeySchema"]} == {
        "gsi1pk": "HASH",
        "gsi1sk": "RANGE",
    }
    assert gsi["Projection"] == {"ProjectionType": "ALL"}
    # And the bucket is encrypted, versioned and blocks public access
    bucket = res["LabelwiseBucket"]["Properties"]
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert all(bucket["PublicAccessBlockConfiguration"].values())


# ------------------------------------------------------------------------------- odds and ends
def test_uploads_function_allows_its_own_queue_loop_and_caps_its_concurrency(
    template: dict[str, Any],
) -> None:
    # Given the uploads function (SQS -> Lambda -> the same SQS queue for a long file's continuation)
    function = template["Resources"]["UploadsFunction"]["Properties"]
    event = function["Events"]["Uploads"]["Properties"]

    # Then Lambda's recursive-loop detection does not stop a file after ~16 continuations (the
    # function's own hop cap, labelwise.uploads, bounds the chain instead)
    assert function["RecursiveLoop"] == "Allow"
    # And the function's own hop cap is a parameter (1,000 follow-up messages per file by default)
    assert function["Environment"]["Variables"]["LABELWISE_UPLOADS_MAX_HOPS"] == {
        "Ref": "UploadsMaxContinuations"
    }
    hops = template["Parameters"]["UploadsMaxContinuations"]
    assert hops["Type"] == "Number" and hops["Default"] == 1000 and hops["MinValue"] == 1
    # And the queue's event source polls with a bounded number of concurrent invocations
    assert event["ScalingConfig"] == {"MaximumConcurrency": {"Ref": "UploadsMaximumConcurrency"}}
    spec = template["Parameters"]["UploadsMaximumConcurrency"]
    assert spec["MinValue"] == 2 and spec["MaxValue"] == 1000  # what the SQS event source accepts
    assert 2 <= spec["Default"] <= 1000


def test_reserved_concurrency_is_a_parameter_of_every_function(template: dict[str, Any]) -> None:
    # Given every function
    for function_id, function in resources(template, FUNCTION).items():
        parameter = function_id.removesuffix("Function") + "ReservedConcurrency"
        # Then its reserved concurrency comes from its own parameter, unset (-1) by default
        reserved = function["Properties"]["ReservedConcurrentExecutions"]
        condition, value, otherwise = reserved["Fn::If"]
        assert value == {"Ref": parameter} and otherwise == {"Ref": "AWS::NoValue"}, function_id
        spec = template["Parameters"][parameter]
        assert spec["Type"] == "Number" and spec["Default"] == -1 and spec["MinValue"] == -1
        # And the condition is on when, and only when, the parameter is set
        assert evaluate_conditions(template)[condition] is False
        assert evaluate_conditions(template, {parameter: "5"})[condition] is True


def test_function_memory_is_at_least_1024_mb(template: dict[str, Any]) -> None:
    # Given the memory parameter shared by every function
    spec = template["Parameters"]["FunctionMemorySize"]
    # Then neither its floor nor its default starve ONNX inference of CPU (Lambda CPU scales with memory)
    assert spec["MinValue"] >= 1024
    assert spec["Default"] >= 1024
    assert template["Globals"]["Function"]["MemorySize"] == {"Ref": "FunctionMemorySize"}


def test_dead_letter_queue_has_an_alarm(template: dict[str, Any]) -> None:
    # Given the CloudWatch alarms of the template
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    on_dlq = [
        a["Properties"]
        for a in alarms.values()
        if {"Name": "QueueName", "Value": {"Fn::GetAtt": ["UploadsDeadLetterQueue", "QueueName"]}}
        in a["Properties"].get("Dimensions", [])
    ]
    # Then one alarm fires as soon as a message lands in the dead-letter queue
    (alarm,) = on_dlq
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold" and alarm["Threshold"] == 0
    assert alarm["TreatMissingData"] == "notBreaching"
    # And it notifies the topic given as a parameter, when one is
    assert alarm["AlarmActions"]["Fn::If"][1] == [{"Ref": "AlarmTopicArn"}]
    condition = alarm["AlarmActions"]["Fn::If"][0]
    assert evaluate_conditions(template)[condition] is False
    assert evaluate_conditions(template, {"AlarmTopicArn": "arn:aws:sns:us-east-1:1:t"})[condition] is True


def test_cors_is_a_parameter(template: dict[str, Any]) -> None:
    # Given the HTTP API
    cors = template["Resources"]["HttpApi"]["Properties"]["CorsConfiguration"]
    condition, config, otherwise = cors["Fn::If"]

    # Then CORS is off by default and on for the origins given
    assert otherwise == {"Ref": "AWS::NoValue"}
    assert config["AllowOrigins"] == {"Ref": "CorsAllowOrigins"}
    assert set(config["AllowMethods"]) == {"GET", "POST", "DELETE", "OPTIONS"}
    assert {h.lower() for h in config["AllowHeaders"]} >= {"authorization", "content-type"}
    assert template["Parameters"]["CorsAllowOrigins"]["Type"] == "CommaDelimitedList"
    assert evaluate_conditions(template)[condition] is False
    assert evaluate_conditions(template, {"CorsAllowOrigins": "https://app.example.com"})[condition] is True


def test_quota_limiter_fails_closed_unless_the_parameter_says_open(template: dict[str, Any]) -> None:
    # Given the environment every function gets
    env = template["Globals"]["Function"]["Environment"]["Variables"]
    # Then the quota limiter's behaviour on table errors is a parameter, fail-closed by default
    assert env["LABELWISE_RATE_LIMIT_FAIL_OPEN"] == {"Ref": "QuotaFailOpen"}
    spec = template["Parameters"]["QuotaFailOpen"]
    assert spec["Default"] == "false" and set(spec["AllowedValues"]) == {"true", "false"}
    # And the value parses as the setting the limiter reads
    for value, fail_open in (("false", False), ("true", True)):
        environ = {"LABELWISE_RATE_LIMIT_FAIL_OPEN": value, "LABELWISE_DATA_DIR": "/tmp/d"}
        assert Settings.from_environ(environ).rate_limit_fail_open is fail_open


def test_endpoint_variant_pins_an_inference_ami(template: dict[str, Any]) -> None:
    # Given the optional endpoint's production variant
    (variant,) = template["Resources"]["EmbeddingEndpointConfig"]["Properties"]["ProductionVariants"]
    # Then its AMI (NVIDIA driver + CUDA) is pinned by a parameter, to one with a CUDA 12 driver
    assert variant["InferenceAmiVersion"] == {"Ref": "EndpointInferenceAmiVersion"}
    spec = template["Parameters"]["EndpointInferenceAmiVersion"]
    assert spec["Default"] in spec["AllowedValues"]
    assert spec["Default"].startswith(
        ("al2-ami-sagemaker-inference-gpu-3", "al2023-ami-sagemaker-inference-gpu")
    )


def test_endpoint_insists_on_cuda_by_default(template: dict[str, Any]) -> None:
    # Given the endpoint model's container environment
    container = template["Resources"]["EmbeddingModel"]["Properties"]["PrimaryContainer"]
    # Then its provider is a parameter, cuda by default: a CUDA provider that did not load makes
    # /ping 503 (the deployment fails) instead of serving on the CPU with only a log line
    assert container["Environment"]["LABELWISE_ENDPOINT_PROVIDER"] == {"Ref": "EndpointProvider"}
    spec = template["Parameters"]["EndpointProvider"]
    assert spec["Default"] == "cuda" and set(spec["AllowedValues"]) == {"cuda", "auto", "cpu"}


# ------------------------------------------------------------------------------------------ moto
@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture
def session() -> Any:
    import boto3

    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )


def test_moto_resources_are_created_from_the_template(
    template: dict[str, Any], moto_url: str, session: Any
) -> None:
    # Given a moto server and the template's own definitions
    prefix = f"t{uuid.uuid4().hex[:6]}"

    # When the helper creates them
    created: CreatedResources = create_resources(session, endpoint_url=moto_url, prefix=prefix)

    # Then the table has the template's keys and index
    dynamodb = session.client("dynamodb", endpoint_url=moto_url)
    table = dynamodb.describe_table(TableName=created.table_name)["Table"]
    props = template["Resources"]["LabelwiseTable"]["Properties"]
    assert table["KeySchema"] == props["KeySchema"]
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(props["AttributeDefinitions"], key=str)
    assert [i["IndexName"] for i in table["GlobalSecondaryIndexes"]] == ["gsi1"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    # And the bucket is versioned and encrypted
    s3 = session.client("s3", endpoint_url=moto_url)
    assert s3.get_bucket_versioning(Bucket=created.bucket_name)["Status"] == "Enabled"
    assert s3.get_bucket_encryption(Bucket=created.bucket_name)["ServerSideEncryptionConfiguration"]["Rules"]
    # And the single-table access patterns work on it: item by key, listing by owner through gsi1
    item = {
        "pk": {"S": "CLF#abc"},
        "sk": {"S": "META"},
        "gsi1pk": {"S": "OWNER#k"},
        "gsi1sk": {"S": "CLF#abc"},
    }
    dynamodb.put_item(TableName=created.table_name, Item=item)
    listed = dynamodb.query(
        TableName=created.table_name,
        IndexName="gsi1",
        KeyConditionExpression="gsi1pk = :o",
        ExpressionAttributeValues={":o": {"S": "OWNER#k"}},
    )
    assert listed["Items"] == [item]


def test_function_environment_resolves_to_the_created_resources(moto_url: str, session: Any) -> None:
    # Given resources created in moto
    created = create_resources(session, endpoint_url=moto_url, prefix=f"t{uuid.uuid4().hex[:6]}")

    # When the classify function's Lambda environment is computed from the template
    env = function_environment("ClassifyFunction", created)

    # Then it names the created table and bucket and the layer's model directory
    assert env["LABELWISE_TABLE_NAME"] == created.table_name
    assert env["LABELWISE_BUCKET_NAME"] == created.bucket_name
    assert env["LABELWISE_MODEL_DIR"] == "/opt/models"
    assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"


def test_short_tags_load_in_long_form(tmp_path: Path) -> None:
    # Given a template using CloudFormation short tags
    path = tmp_path / "t.yaml"
    path.write_text(
        "A: !Ref X\nB: !GetAtt T.Arn\nC: !Sub '${X}-y'\nD: !Join [',', [a, !Ref X]]\n"
        "E: !If [Cond, 1, !Ref AWS::NoValue]\nF: !GetAtt [T, StreamArn]\n",
        encoding="utf-8",
    )

    # When it is loaded
    data = load_template(path)

    # Then every tag is its long form
    assert data == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["T", "Arn"]},
        "C": {"Fn::Sub": "${X}-y"},
        "D": {"Fn::Join": [",", ["a", {"Ref": "X"}]]},
        "E": {"Fn::If": ["Cond", 1, {"Ref": "AWS::NoValue"}]},
        "F": {"Fn::GetAtt": ["T", "StreamArn"]},
    }


# ---------------------------------------------------------------------------------------- events
EVENTS = REPO_ROOT / "events"
HTTP_EVENTS = sorted(p for p in EVENTS.glob("*.json") if not p.name.startswith("s3-"))


@pytest.mark.parametrize("path", HTTP_EVENTS, ids=lambda p: p.name)
def test_sample_http_events_hit_a_template_route_with_a_valid_body(path: Path) -> None:
    import json

    from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

    from labelwise.api import schemas
    from labelwise.api.embedding_schemas import EmbeddingsRequest

    # Given a sample API Gateway HTTP API (payload 2.0) event
    event = APIGatewayProxyEventV2(json.loads(path.read_text(encoding="utf-8")))

    # Then it is a v2 event for one of the template's routes
    assert event.version == "2.0"
    method, route = event.route_key.split(" ", 1)
    assert (method, route) in ROUTES
    assert event.request_context.http.method == method
    # And its body is a valid request for that route
    if (method, route) == ("POST", "/v1/classify"):
        schemas.ClassifyRequest.model_validate_json(event.body or "")
    elif (method, route) == ("POST", "/v1/train"):
        schemas.TrainRequest.model_validate_json(event.body or "")
    elif (method, route) == ("POST", "/v1/embeddings"):
        EmbeddingsRequest.model_validate_json(event.body or "")
    else:
        assert event.body is None


def test_sample_s3_event_is_an_object_created_record() -> None:
    import json

    from aws_lambda_powertools.utilities.data_classes import S3Event

    # Given the sample S3 notification (for the future upload trigger)
    event = S3Event(json.loads((EVENTS / "s3-object-created.json").read_text(encoding="utf-8")))

    # Then it is one ObjectCreated record with a bucket and a key
    (record,) = list(event.records)
    assert record.event_name.startswith("ObjectCreated:")
    assert record.s3.bucket.name and record.s3.get_object.key
