"""Provider errors become domain errors (AWS adapter via botocore's Stubber; local via a bad path)."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.stub import Stubber

from labelwise.errors import ResourceNotFound, StoreUnavailable
from labelwise.storage.aws import AwsClassifierStore, AwsKeyStore
from labelwise.storage.local import LocalClassifierStore
from labelwise.storage.ports import ClassifierMeta, VersionConflict, utcnow


def clients(endpoint: str | None = None, **config):
    session = boto3.session.Session(aws_access_key_id="x", aws_secret_access_key="x", region_name="us-east-1")
    cfg = Config(**config) if config else None
    return session.client("dynamodb", endpoint_url=endpoint, config=cfg), session.client(
        "s3", endpoint_url=endpoint, config=cfg
    )


def meta() -> ClassifierMeta:
    now = utcnow()
    return ClassifierMeta(id="c1", owner="t", model="m", labels=("a", "b"), created_at=now, updated_at=now)


def test_conditional_failure_is_version_conflict_and_blob_is_cleaned_up():
    ddb, s3 = clients()
    store = AwsClassifierStore("table", "bucket", dynamodb=ddb, s3=s3)
    m2 = meta().model_copy(update={"version": 2})
    with Stubber(ddb) as dstub, Stubber(s3) as sstub:
        sstub.add_response("put_object", {})
        dstub.add_client_error("update_item", service_error_code="ConditionalCheckFailedException")
        # another writer's version is committed (not ours: our blob is cleaned up)
        dstub.add_response("get_item", {"Item": {"weights_key": {"S": "classifiers/c1/v2-other.npz"}}})
        sstub.add_response("delete_object", {})
        with pytest.raises(VersionConflict) as info:
            store.commit_version(m2, b"w", expected_version=1)
        sstub.assert_no_pending_responses()
    assert info.value.__cause__ is not None


def test_other_client_errors_are_store_unavailable():
    ddb, s3 = clients()
    store = AwsClassifierStore("table", "bucket", dynamodb=ddb, s3=s3)
    keys = AwsKeyStore("table", dynamodb=ddb)
    with Stubber(ddb) as dstub:
        dstub.add_client_error("get_item", service_error_code="ResourceNotFoundException")
        with pytest.raises(StoreUnavailable) as info:
            store.get_meta("c1")
        dstub.add_client_error("get_item", service_error_code="ProvisionedThroughputExceededException")
        with pytest.raises(StoreUnavailable):
            keys.authenticate("lw_x")
    assert info.value.__cause__ is not None


def test_missing_weights_object_is_not_found():
    ddb, s3 = clients()
    store = AwsClassifierStore("table", "bucket", dynamodb=ddb, s3=s3)
    item = {
        "id": {"S": "c1"}, "version": {"N": "1"}, "weights_key": {"S": "classifiers/c1/v1-x.npz"},
    }  # fmt: skip
    with Stubber(ddb) as dstub, Stubber(s3) as sstub:
        dstub.add_response("get_item", {"Item": item})
        sstub.add_client_error("get_object", service_error_code="NoSuchKey", http_status_code=404)
        with pytest.raises(ResourceNotFound):
            store.load_weights("c1", 1)


def test_unreachable_endpoint_is_store_unavailable():
    # Given an endpoint nobody listens on, no retries, short timeouts
    ddb, s3 = clients(
        "http://127.0.0.1:9", retries={"mode": "standard", "max_attempts": 1}, connect_timeout=0.5
    )
    store = AwsClassifierStore("table", "bucket", dynamodb=ddb, s3=s3)
    with pytest.raises(StoreUnavailable) as info:
        store.get_meta("c1")
    assert info.value.__cause__ is not None
    store.record_use("c1")  # best effort: never raises


def test_local_store_on_unusable_path_is_store_unavailable(tmp_path: Path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StoreUnavailable):
        LocalClassifierStore(blocker / "data")
