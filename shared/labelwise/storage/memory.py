"""In-memory stores for unit tests and the contract suite.

Same semantics as the real adapters (versions, conditional commits, last two weights kept). Every
write is appended to :attr:`MemoryClassifierStore.writes` / :attr:`MemoryKeyStore.writes` so tests
can inspect exactly what would have been persisted.
"""

from __future__ import annotations

import threading
from typing import Any

from labelwise.errors import ResourceNotFound
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

#: How many versions of weights a store keeps per classifier.
KEEP_VERSIONS = 2


class MemoryClassifierStore(ClassifierStore):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meta: dict[str, ClassifierMeta] = {}
        self._weights: dict[str, dict[int, bytes]] = {}
        self.writes: list[tuple[str, Any]] = []

    def create(self, meta: ClassifierMeta, weights: bytes) -> None:
        with self._lock:
            if meta.id in self._meta:
                raise VersionConflict(f"Classifier {meta.id} already exists.")
            self.writes.append(("weights", bytes(weights)))
            self._weights[meta.id] = {meta.version: bytes(weights)}
            self.writes.append(("meta", meta))
            self._meta[meta.id] = meta

    def get_meta(self, classifier_id: str) -> ClassifierMeta | None:
        with self._lock:
            return self._meta.get(classifier_id)

    def load_weights(self, classifier_id: str, version: int) -> bytes:
        with self._lock:
            blob = self._weights.get(classifier_id, {}).get(version)
        if blob is None:
            raise ResourceNotFound(f"Weights of classifier {classifier_id} version {version} not found.")
        return blob

    def commit_version(self, meta: ClassifierMeta, weights: bytes, expected_version: int) -> None:
        validate_commit(meta, expected_version)
        with self._lock:
            current = self._meta.get(meta.id)
            if current is None or current.version != expected_version:
                raise VersionConflict(f"Classifier {meta.id} is no longer at version {expected_version}.")
            self.writes.append(("weights", bytes(weights)))
            versions = self._weights.setdefault(meta.id, {})
            versions[meta.version] = bytes(weights)
            merged = current.model_copy(
                update={
                    "labels": meta.labels,
                    "access": meta.access,
                    "num_samples": meta.num_samples,
                    "version": meta.version,
                    "updated_at": meta.updated_at,
                    "train_count": meta.train_count,
                    "multi_label": current.multi_label if meta.multi_label is None else meta.multi_label,
                }
            )
            self.writes.append(("meta", merged))
            self._meta[meta.id] = merged
            for old in [v for v in versions if v <= meta.version - KEEP_VERSIONS]:
                del versions[old]

    def list_by_owner(self, tenant_id: str) -> list[ClassifierMeta]:
        with self._lock:
            found = [m for m in self._meta.values() if m.owner == tenant_id]
        return sorted(found, key=lambda m: (m.created_at, m.id))

    def count_by_owner(self, tenant_id: str) -> int:
        return len(self.list_by_owner(tenant_id))

    def delete(self, classifier_id: str) -> bool:
        with self._lock:
            self._weights.pop(classifier_id, None)
            return self._meta.pop(classifier_id, None) is not None

    def record_use(self, classifier_id: str) -> None:
        with self._lock:
            current = self._meta.get(classifier_id)
            if current is None:
                return
            updated = current.model_copy(
                update={"classify_count": current.classify_count + 1, "last_used_at": utcnow()}
            )
            self.writes.append(("meta", updated))
            self._meta[classifier_id] = updated


class MemoryKeyStore(KeyStore):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_hash: dict[str, ApiKeyRecord] = {}
        self._hash_by_id: dict[str, str] = {}
        self.writes: list[tuple[str, Any]] = []

    def create(self, tenant_id: str, name: str) -> tuple[str, ApiKeyRecord]:
        plaintext, digest, record = issue_api_key(tenant_id, name)
        with self._lock:
            self.writes.append(("key", (digest, record)))
            self._by_hash[digest] = record
            self._hash_by_id[record.key_id] = digest
        return plaintext, record

    def authenticate(self, plaintext: str) -> ApiKeyRecord | None:
        with self._lock:
            record = self._by_hash.get(hash_api_key(plaintext))
        return None if record is None or record.revoked else record

    def list(self, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        with self._lock:
            records = [r for r in self._by_hash.values() if tenant_id is None or r.tenant_id == tenant_id]
        return sorted(records, key=lambda r: (r.created_at, r.key_id))

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with self._lock:
            digest = self._hash_by_id.get(key_id)
            return None if digest is None else self._by_hash[digest]

    def revoke(self, key_id: str) -> None:
        with self._lock:
            digest = self._hash_by_id.get(key_id)
            if digest is None:
                raise ResourceNotFound(f"API key {key_id} not found.")
            revoked = self._by_hash[digest].model_copy(update={"revoked": True})
            self.writes.append(("key", (digest, revoked)))
            self._by_hash[digest] = revoked
