"""Storage: ports (:mod:`.ports`) and adapters (:mod:`.local`, :mod:`.aws`, :mod:`.memory`)."""

from __future__ import annotations

from labelwise.settings import Settings
from labelwise.storage.ports import (
    ApiKeyRecord,
    ClassifierMeta,
    ClassifierStore,
    KeyStore,
    VersionConflict,
)

__all__ = [
    "ApiKeyRecord",
    "ClassifierMeta",
    "ClassifierStore",
    "KeyStore",
    "VersionConflict",
    "open_stores",
]


def open_stores(settings: Settings) -> tuple[ClassifierStore, KeyStore]:
    """The adapters ``settings.store`` names (imported lazily: boto3 only for ``aws``)."""
    if settings.store == "aws":
        from labelwise.storage.aws import AwsClassifierStore, AwsKeyStore, make_clients

        dynamodb, s3 = make_clients(settings)
        return (
            AwsClassifierStore(settings.table_name, settings.bucket_name, dynamodb=dynamodb, s3=s3),
            AwsKeyStore(settings.table_name, dynamodb=dynamodb),
        )
    from labelwise.storage.local import LocalClassifierStore, LocalKeyStore

    return LocalClassifierStore(settings.data_dir), LocalKeyStore(settings.data_dir)
