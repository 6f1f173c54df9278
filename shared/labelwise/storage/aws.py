"""AWS adapter: DynamoDB single table (metadata, keys) + S3 (weights).

Items (``template.yaml`` ``LabelwiseTable``: pk/sk strings, GSI ``gsi1`` on gsi1pk/gsi1sk)::

    classifier     pk=CLF#<id>        sk=META    gsi1pk=OWNER#<tenant>  gsi1sk=CLF#<created iso>#<id>
                   + fields of ClassifierMeta, weights_key / prev_version / prev_weights_key
    API key        pk=KEY#<sha256>    sk=KEY     gsi1pk=OWNER#<tenant>  gsi1sk=KEY#<created iso>#<key id>
    key-id lookup  pk=KEYID#<key id>  sk=KEYID   key_hash=<sha256>

Weights live in S3 at ``classifiers/<id>/v<version>-<token>.npz``: the random token means two
writers racing for the same version never overwrite each other's blob (the loser deletes its own);
the meta item points at the committed one. The blob is written first, then the meta item is
updated with ``ConditionExpression: version = :expected``. Provider errors are wrapped:
``ConditionalCheckFailedException`` -> :class:`VersionConflict`, anything else ->
:class:`labelwise.errors.StoreUnavailable`.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from labelwise.errors import ResourceNotFound, StoreUnavailable
from labelwise.settings import Settings
from labelwise.storage.ports import (
    ApiKeyRecord,
    ClassifierMeta,
    ClassifierStore,
    KeyStore,
    VersionConflict,
    hash_api_key,
    issue_api_key,
    utcnow,
    validate_commit,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

GSI = "gsi1"
#: botocore client settings: standard retry mode (exponential backoff with jitter) and short timeouts.
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=2,
    read_timeout=5,
)
_CONDITION_FAILED = {"ConditionalCheckFailedException", "TransactionCanceledException"}

Item = dict[str, Any]


def make_clients(settings: Settings) -> tuple[DynamoDBClient, S3Client]:
    """DynamoDB and S3 clients for ``settings`` (endpoint override for moto / LocalStack)."""
    endpoint = settings.aws_endpoint_url
    session = boto3.session.Session()
    dynamodb = session.client("dynamodb", endpoint_url=endpoint, config=CLIENT_CONFIG)
    return dynamodb, s3_client(session, endpoint, CLIENT_CONFIG)


def s3_client(session: boto3.session.Session, endpoint: str | None, config: Config) -> S3Client:
    """An S3 client of ``session`` with ``config``; path-style addressing under an endpoint override
    (moto / LocalStack)."""
    if endpoint:
        config = config.merge(Config(s3={"addressing_style": "path"}))
    return session.client("s3", endpoint_url=endpoint, config=config)


def error_code(exc: ClientError) -> str:
    """The AWS error code of a botocore ``ClientError`` (``""`` when it has none)."""
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextlib.contextmanager
def provider_errors(
    what: str, provider: str = "AWS store", special: Callable[[str], Exception | None] | None = None
) -> Iterator[None]:
    """Wrap botocore errors raised inside into domain errors: a ``ClientError`` whose code
    ``special`` maps to an exception raises that one, any other -> ``StoreUnavailable("<provider>
    failed to <what>.")``; a ``BotoCoreError`` (unreachable, timeout) -> ``StoreUnavailable``. The
    AWS adapters (``storage``, ``uploads``) all wrap their calls with it."""
    try:
        yield
    except ClientError as exc:
        translated = special(error_code(exc)) if special is not None else None
        if translated is not None:
            raise translated from exc
        raise StoreUnavailable(f"{provider} failed to {what}.") from exc
    except BotoCoreError as exc:
        raise StoreUnavailable(f"{provider} unreachable while trying to {what}.") from exc


def _provider_errors(what: str) -> contextlib.AbstractContextManager[None]:
    """:func:`provider_errors` of the stores: a failed condition is a :class:`VersionConflict`."""

    def conflict(code: str) -> Exception | None:
        if code in _CONDITION_FAILED:
            return VersionConflict(f"Conditional write failed while trying to {what}.")
        return None

    return provider_errors(what, special=conflict)


def _commit_request(table: str, meta: ClassifierMeta, expected_version: int, weights_key: str) -> Item:
    """The UpdateItem arguments committing ``meta`` (weights at ``weights_key``) over
    ``expected_version``: the previous version's weights key is kept as ``prev_weights_key``, and
    the classifier's kind is recorded when ``meta`` knows it."""
    names = [
        "labels", "access", "num_samples", "version", "updated_at", "train_count",
        "prev_version", "prev_weights_key", "weights_key",
    ]  # fmt: skip
    values: Item = {
        ":labels": {"L": [_s(label) for label in meta.labels]},
        ":access": _s(meta.access),
        ":num_samples": _n(meta.num_samples),
        ":version": _n(meta.version),
        ":updated_at": _s(meta.updated_at.isoformat()),
        ":train_count": _n(meta.train_count),
        ":expected": _n(expected_version),
        ":weights_key": _s(weights_key),
    }
    kind = ""
    if meta.multi_label is not None:
        names.append("multi_label")
        values[":multi_label"] = {"BOOL": meta.multi_label}
        kind = ", #multi_label = :multi_label"
    return {
        "TableName": table,
        "Key": _clf_key(meta.id),
        "UpdateExpression": (
            "SET #labels = :labels, #access = :access, #num_samples = :num_samples,"
            " #version = :version, #updated_at = :updated_at, #train_count = :train_count,"
            " #prev_version = :expected, #prev_weights_key = #weights_key,"
            f" #weights_key = :weights_key{kind}"
        ),
        "ConditionExpression": "#version = :expected",
        "ExpressionAttributeNames": {f"#{name}": name for name in names},  # every one named
        "ExpressionAttributeValues": values,
        "ReturnValues": "ALL_OLD",
    }


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _n(value: int) -> dict[str, str]:
    return {"N": str(value)}


def _clf_key(classifier_id: str) -> Item:
    return {"pk": _s(f"CLF#{classifier_id}"), "sk": _s("META")}


def _weights_key(classifier_id: str, version: int) -> str:
    return f"classifiers/{classifier_id}/v{version}-{secrets.token_hex(6)}.npz"


def _meta_from_item(item: Item) -> ClassifierMeta:
    last_used = item.get("last_used_at")
    return ClassifierMeta(
        id=item["id"]["S"],
        owner=item["owner"]["S"],
        model=item["model"]["S"],
        labels=tuple(v["S"] for v in item["labels"]["L"]),
        access=item["access"]["S"],
        num_samples=int(item["num_samples"]["N"]),
        version=int(item["version"]["N"]),
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        updated_at=datetime.fromisoformat(item["updated_at"]["S"]),
        last_used_at=None if last_used is None else datetime.fromisoformat(last_used["S"]),
        classify_count=int(item.get("classify_count", {"N": "0"})["N"]),
        train_count=int(item.get("train_count", {"N": "0"})["N"]),
        multi_label=item["multi_label"]["BOOL"] if "multi_label" in item else None,
    )


class AwsClassifierStore(ClassifierStore):
    """:class:`ClassifierStore` on DynamoDB (``table``) + S3 (``bucket``)."""

    def __init__(self, table: str, bucket: str, *, dynamodb: DynamoDBClient, s3: S3Client) -> None:
        self.table = table
        self.bucket = bucket
        self._ddb = dynamodb
        self._s3 = s3

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsClassifierStore:
        dynamodb, s3 = make_clients(settings)
        return cls(settings.table_name, settings.bucket_name, dynamodb=dynamodb, s3=s3)

    # -- blobs ------------------------------------------------------------------------------------

    def _put_blob(self, key: str, data: bytes) -> None:
        with _provider_errors("write weights"):
            self._s3.put_object(
                Bucket=self.bucket, Key=key, Body=data, ContentType="application/octet-stream"
            )

    def _landed(self, classifier_id: str, key: str) -> bool | None:
        """Whether the meta item points at weights ``key``, i.e. a write whose answer was lost (a
        timeout) did land; ``None`` when that cannot be read now."""
        try:
            item = self._ddb.get_item(TableName=self.table, Key=_clf_key(classifier_id), ConsistentRead=True)
        except (ClientError, BotoCoreError):
            return None
        return item.get("Item", {}).get("weights_key", {}).get("S") == key

    def _settle_failed_write(self, classifier_id: str, key: str) -> bool:
        """After a meta write failed: ``True`` if it landed after all (a retry of a write whose answer
        was lost fails its own condition). Otherwise the new blob is deleted, unless whether the write
        landed is unknown: a stray blob is harmless, a meta item naming a deleted blob is not."""
        landed = self._landed(classifier_id, key)
        if landed is False:
            self._delete_blob_quietly(key)
        return bool(landed)

    def _delete_blob_quietly(self, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError):
            logger.warning("could not delete weights object %s", key, exc_info=True)

    # -- port -------------------------------------------------------------------------------------

    def create(self, meta: ClassifierMeta, weights: bytes) -> None:
        key = _weights_key(meta.id, meta.version)
        self._put_blob(key, weights)
        item: Item = {
            **_clf_key(meta.id),
            "gsi1pk": _s(f"OWNER#{meta.owner}"),
            "gsi1sk": _s(f"CLF#{meta.created_at.isoformat()}#{meta.id}"),
            "id": _s(meta.id),
            "owner": _s(meta.owner),
            "model": _s(meta.model),
            "labels": {"L": [_s(label) for label in meta.labels]},
            "access": _s(meta.access),
            "num_samples": _n(meta.num_samples),
            "version": _n(meta.version),
            "created_at": _s(meta.created_at.isoformat()),
            "updated_at": _s(meta.updated_at.isoformat()),
            "classify_count": _n(meta.classify_count),
            "train_count": _n(meta.train_count),
            "weights_key": _s(key),
        }
        if meta.last_used_at is not None:
            item["last_used_at"] = _s(meta.last_used_at.isoformat())
        if meta.multi_label is not None:
            item["multi_label"] = {"BOOL": meta.multi_label}
        try:
            with _provider_errors("create a classifier"):
                self._ddb.put_item(
                    TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
                )
        except (VersionConflict, StoreUnavailable):
            if self._settle_failed_write(meta.id, key):
                return
            raise

    def _get_item(self, classifier_id: str) -> Item | None:
        with _provider_errors("read a classifier"):
            response = self._ddb.get_item(
                TableName=self.table, Key=_clf_key(classifier_id), ConsistentRead=True
            )
        item: Item | None = response.get("Item")
        return item

    def get_meta(self, classifier_id: str) -> ClassifierMeta | None:
        item = self._get_item(classifier_id)
        return None if item is None else _meta_from_item(item)

    def load_weights(self, classifier_id: str, version: int) -> bytes:
        item = self._get_item(classifier_id)
        key: str | None = None
        if item is not None and int(item["version"]["N"]) == version:
            key = item["weights_key"]["S"]
        elif item is not None and "prev_version" in item and int(item["prev_version"]["N"]) == version:
            key = item["prev_weights_key"]["S"]
        missing = f"Weights of classifier {classifier_id} version {version} not found."
        if key is None:
            raise ResourceNotFound(missing)
        not_found = {"NoSuchKey", "404"}
        with provider_errors(
            "read weights", special=lambda code: ResourceNotFound(missing) if code in not_found else None
        ):
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
            body: bytes = response["Body"].read()
        return body

    def commit_version(self, meta: ClassifierMeta, weights: bytes, expected_version: int) -> None:
        validate_commit(meta, expected_version)
        key = _weights_key(meta.id, meta.version)
        self._put_blob(key, weights)
        try:
            with _provider_errors("commit a version"):
                response = self._ddb.update_item(**_commit_request(self.table, meta, expected_version, key))
        except VersionConflict as exc:
            if self._settle_failed_write(meta.id, key):
                return  # committed; the obsolete blob it replaced stays until the classifier is deleted
            raise VersionConflict(
                f"Classifier {meta.id} is no longer at version {expected_version}."
            ) from exc
        except StoreUnavailable:
            if self._settle_failed_write(meta.id, key):
                return
            raise
        obsolete = response.get("Attributes", {}).get("prev_weights_key")
        if obsolete is not None:
            self._delete_blob_quietly(obsolete["S"])

    def _query_owner(self, tenant_id: str, **extra: Any) -> Iterator[Any]:
        paginator = self._ddb.get_paginator("query")
        with _provider_errors("list classifiers"):
            yield from paginator.paginate(
                TableName=self.table,
                IndexName=GSI,
                KeyConditionExpression="gsi1pk = :owner AND begins_with(gsi1sk, :prefix)",
                ExpressionAttributeValues={":owner": _s(f"OWNER#{tenant_id}"), ":prefix": _s("CLF#")},
                **extra,
            )

    def list_by_owner(self, tenant_id: str) -> list[ClassifierMeta]:
        return [_meta_from_item(item) for page in self._query_owner(tenant_id) for item in page["Items"]]

    def count_by_owner(self, tenant_id: str) -> int:
        return sum(int(page["Count"]) for page in self._query_owner(tenant_id, Select="COUNT"))

    def delete(self, classifier_id: str) -> bool:
        with _provider_errors("delete a classifier"):
            response = self._ddb.delete_item(
                TableName=self.table, Key=_clf_key(classifier_id), ReturnValues="ALL_OLD"
            )
        if "Attributes" not in response:
            return False
        try:
            paginator = self._s3.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=f"classifiers/{classifier_id}/"):
                objects: list[Any] = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
                if objects:
                    self._s3.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})
        except (ClientError, BotoCoreError):
            logger.warning("could not delete weights of classifier %s", classifier_id, exc_info=True)
        return True

    def record_use(self, classifier_id: str) -> None:
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key=_clf_key(classifier_id),
                UpdateExpression="ADD classify_count :one SET last_used_at = :now",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":one": _n(1), ":now": _s(utcnow().isoformat())},
            )
        except (ClientError, BotoCoreError):
            logger.warning("could not record use of classifier %s", classifier_id, exc_info=True)


def _record_from_item(item: Item) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=item["key_id"]["S"],
        tenant_id=item["tenant_id"]["S"],
        name=item["name"]["S"],
        created_at=datetime.fromisoformat(item["created_at"]["S"]),
        revoked=bool(item.get("revoked", {"BOOL": False})["BOOL"]),
    )


class AwsKeyStore(KeyStore):
    """:class:`KeyStore` on the same DynamoDB table."""

    def __init__(self, table: str, *, dynamodb: DynamoDBClient) -> None:
        self.table = table
        self._ddb = dynamodb

    @classmethod
    def from_settings(cls, settings: Settings) -> AwsKeyStore:
        return cls(settings.table_name, dynamodb=make_clients(settings)[0])

    def create(self, tenant_id: str, name: str) -> tuple[str, ApiKeyRecord]:
        plaintext, digest, record = issue_api_key(tenant_id, name)
        created = record.created_at.isoformat()
        with _provider_errors("create an API key"):
            self._ddb.transact_write_items(
                TransactItems=[
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                "pk": _s(f"KEY#{digest}"),
                                "sk": _s("KEY"),
                                "gsi1pk": _s(f"OWNER#{tenant_id}"),
                                "gsi1sk": _s(f"KEY#{created}#{record.key_id}"),
                                "key_id": _s(record.key_id),
                                "tenant_id": _s(tenant_id),
                                "name": _s(name),
                                "created_at": _s(created),
                                "revoked": {"BOOL": False},
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                "pk": _s(f"KEYID#{record.key_id}"),
                                "sk": _s("KEYID"),
                                "key_hash": _s(digest),
                            },
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        return plaintext, record

    def authenticate(self, plaintext: str) -> ApiKeyRecord | None:
        key = {"pk": _s(f"KEY#{hash_api_key(plaintext)}"), "sk": _s("KEY")}
        with _provider_errors("authenticate"):
            item = self._ddb.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        if item is None:
            return None
        record = _record_from_item(item)
        return None if record.revoked else record

    def list(self, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        items: list[Item] = []
        with _provider_errors("list API keys"):
            if tenant_id is None:
                for page in self._ddb.get_paginator("scan").paginate(
                    TableName=self.table,
                    FilterExpression="sk = :key",
                    ExpressionAttributeValues={":key": _s("KEY")},
                ):
                    items += page["Items"]
            else:
                for page in self._ddb.get_paginator("query").paginate(
                    TableName=self.table,
                    IndexName=GSI,
                    KeyConditionExpression="gsi1pk = :owner AND begins_with(gsi1sk, :prefix)",
                    ExpressionAttributeValues={":owner": _s(f"OWNER#{tenant_id}"), ":prefix": _s("KEY#")},
                ):
                    items += page["Items"]
        records = [_record_from_item(item) for item in items]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    def _key_hash(self, key_id: str, action: str) -> str | None:
        """The stored hash of key ``key_id`` (its ``KEYID#`` lookup item), or None."""
        with _provider_errors(action):
            lookup = self._ddb.get_item(
                TableName=self.table,
                Key={"pk": _s(f"KEYID#{key_id}"), "sk": _s("KEYID")},
                ConsistentRead=True,
            ).get("Item")
        return None if lookup is None else str(lookup["key_hash"]["S"])

    def get(self, key_id: str) -> ApiKeyRecord | None:
        key_hash = self._key_hash(key_id, "read an API key")
        if key_hash is None:
            return None
        with _provider_errors("read an API key"):
            item = self._ddb.get_item(
                TableName=self.table,
                Key={"pk": _s(f"KEY#{key_hash}"), "sk": _s("KEY")},
                ConsistentRead=True,
            ).get("Item")
        return None if item is None else _record_from_item(item)

    def revoke(self, key_id: str) -> None:
        key_hash = self._key_hash(key_id, "revoke an API key")
        if key_hash is None:
            raise ResourceNotFound(f"API key {key_id} not found.")
        try:
            with _provider_errors("revoke an API key"):
                self._ddb.update_item(
                    TableName=self.table,
                    Key={"pk": _s(f"KEY#{key_hash}"), "sk": _s("KEY")},
                    UpdateExpression="SET revoked = :true",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeValues={":true": {"BOOL": True}},
                )
        except VersionConflict as exc:
            raise ResourceNotFound(f"API key {key_id} not found.") from exc
