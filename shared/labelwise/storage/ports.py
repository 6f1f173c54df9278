"""Storage ports: the records and the two small abstract stores the logic depends on.

Adapters: :mod:`labelwise.storage.local` (SQLite + files), :mod:`labelwise.storage.aws`
(DynamoDB + S3) and :mod:`labelwise.storage.memory` (in-memory, for unit tests). One contract
suite (``tests/integration/test_store_contract.py``) runs against all of them.

Only metadata and learned weights are stored; training examples never are.
"""

from __future__ import annotations

import hashlib
import secrets
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from labelwise.errors import Conflict

Access = Literal["private", "public"]

#: Prefix of every plaintext API key.
KEY_PREFIX = "lw_"


class VersionConflict(Conflict):
    """A conditional write found a version other than the one it expected."""


def utcnow() -> datetime:
    """Timezone-aware UTC now (microsecond resolution, which every adapter preserves)."""
    return datetime.now(UTC)


def new_api_key() -> str:
    """A fresh plaintext API key: ``lw_`` + 32 random bytes, URL-safe base64."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    """Public identifier of an API key (safe to show and log)."""
    return "key_" + secrets.token_hex(8)


def hash_api_key(plaintext: str) -> str:
    """The only form in which a key is stored: its sha256, hex.

    >>> hash_api_key("lw_x")[:12]
    '2df7e2d938d2'
    """
    return hashlib.sha256(plaintext.encode()).hexdigest()


class ClassifierMeta(BaseModel):
    """Everything about a classifier except its weights."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Classifier id (a UUID).")
    owner: str = Field(description="Tenant id of the key that created it.")
    model: str = Field(description="Canonical embedding model name.")
    labels: tuple[str, ...] = Field(description="Labels in weight-row order (append-only).")
    access: Access = Field(
        default="private", description="private: owner only; public: any valid key may classify with it."
    )
    num_samples: int = Field(default=0, ge=0, description="Examples learned so far.")
    version: int = Field(default=1, ge=1, description="Incremented by every train call.")
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None = None
    classify_count: int = Field(default=0, ge=0)
    train_count: int = Field(default=0, ge=0)
    multi_label: bool | None = Field(
        default=None,
        description="Whether the classifier scores each label independently (created with `multi_label`). "
        "None: stored before the kind was kept beside the weights; recorded by its next training call.",
    )


class ApiKeyRecord(BaseModel):
    """A stored API key (the plaintext is never stored; see :func:`hash_api_key`)."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    tenant_id: str
    name: str
    created_at: datetime
    revoked: bool = False


class IssuedKey(NamedTuple):
    """A new API key: the plaintext (shown once), its stored digest and its record."""

    plaintext: str
    digest: str
    record: ApiKeyRecord


def issue_api_key(tenant_id: str, name: str) -> IssuedKey:
    """A fresh key for ``tenant_id`` named ``name``, created now (a key store then stores it)."""
    plaintext = new_api_key()
    record = ApiKeyRecord(key_id=new_key_id(), tenant_id=tenant_id, name=name, created_at=utcnow())
    return IssuedKey(plaintext, hash_api_key(plaintext), record)


class ClassifierStore(ABC):
    """Classifier metadata plus versioned weights blobs, with optimistic concurrency.

    Invariants every adapter keeps:

    * a version's weights are written before the metadata points at it, so a reader that sees
      version ``v`` in :meth:`get_meta` can :meth:`load_weights` ``v``;
    * the previous version stays readable until it is replaced (the last two are kept);
    * :meth:`commit_version` never touches ``classify_count`` / ``last_used_at`` (owned by
      :meth:`record_use`), so the two never lose each other's updates.
    """

    @abstractmethod
    def create(self, meta: ClassifierMeta, weights: bytes) -> None:
        """Store a new classifier (``meta.version`` is its first version). Raises
        :class:`VersionConflict` if the id exists."""

    @abstractmethod
    def get_meta(self, classifier_id: str) -> ClassifierMeta | None:
        """Current metadata (strongly consistent), or None if there is no such classifier."""

    @abstractmethod
    def load_weights(self, classifier_id: str, version: int) -> bytes:
        """The weights of ``version``; raises :class:`labelwise.errors.ResourceNotFound` if that
        version is no longer (or not) stored."""

    @abstractmethod
    def commit_version(self, meta: ClassifierMeta, weights: bytes, expected_version: int) -> None:
        """Write ``weights`` as ``meta.version`` (which must be ``expected_version + 1``), then flip
        the metadata to ``meta`` if the stored version is still ``expected_version``; otherwise
        raise :class:`VersionConflict` (also when the classifier was deleted). Updates labels,
        access, num_samples, version, updated_at and train_count."""

    @abstractmethod
    def list_by_owner(self, tenant_id: str) -> list[ClassifierMeta]:
        """The tenant's classifiers, oldest first."""

    @abstractmethod
    def count_by_owner(self, tenant_id: str) -> int:
        """How many classifiers the tenant owns."""

    @abstractmethod
    def delete(self, classifier_id: str) -> bool:
        """Delete metadata and all weights. Returns False if there was no such classifier."""

    @abstractmethod
    def record_use(self, classifier_id: str) -> None:
        """Best effort: ``classify_count += 1``, ``last_used_at = now``. Never raises."""


class KeyStore(ABC):
    """API keys, stored only as sha256 hashes."""

    @abstractmethod
    def create(self, tenant_id: str, name: str) -> tuple[str, ApiKeyRecord]:
        """Mint a key; returns ``(plaintext, record)``. The plaintext is not retrievable later."""

    @abstractmethod
    def authenticate(self, plaintext: str) -> ApiKeyRecord | None:
        """The record of a valid, unrevoked key, else None."""

    @abstractmethod
    def list(self, tenant_id: str | None = None) -> list[ApiKeyRecord]:
        """All keys (or a tenant's), oldest first, revoked ones included."""

    @abstractmethod
    def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record of key ``key_id`` (revoked ones included), or None for an unknown id.

        Used where a key is named by its public id rather than presented (uploads' ``api-key-id``)."""

    @abstractmethod
    def revoke(self, key_id: str) -> None:
        """Revoke a key; raises :class:`labelwise.errors.ResourceNotFound` for an unknown id."""


def validate_commit(meta: ClassifierMeta, expected_version: int) -> None:
    """Shared precondition of :meth:`ClassifierStore.commit_version`."""
    if meta.version != expected_version + 1:
        raise ValueError(
            f"meta.version must be expected_version + 1, got {meta.version} after {expected_version}"
        )
