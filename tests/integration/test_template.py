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
)

SAM = REPO_ROOT / ".tools" / "sam" / "bin" / "sam"

ROUTES = {
    ("POST", "/v1/classify"): "ClassifyFunction",
    ("POST", "/v1/train"): "TrainFunction",
    ("GET", "/v1/classifiers"): "TrainFunction",
    ("GET", "/v1/classifiers/{classifier_id}"): "TrainFunction",
    ("DELETE", "/v1/classifiers/{classifier_id}"): "TrainFunction",
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


def test_train_function_has_crud_on_its_own_table_and_bucket_only(template: dict[str, Any]) -> None:
    # Given the train function's policies
    policies = _policy_templates(template, "TrainFunction")

    # Then it has CRUD templates scoped to this stack's table and bucket, and nothing else
    assert policies == {
        "DynamoDBCrudPolicy": {"TableName": {"Ref": "LabelwiseTable"}},
        "S3CrudPolicy": {"BucketName": {"Ref": "LabelwiseBucket"}},
    }
    assert _inline_statements(template, "TrainFunction") == []


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
