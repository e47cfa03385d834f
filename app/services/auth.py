"""API keys: generation, hashing, authentication and the current principal.

Keys are 32 random bytes (``secrets.token_urlsafe``) behind a ``tx_`` marker. Only their SHA-256
is stored: with 256 bits of entropy no brute force or rainbow table applies, so a slow KDF would add
latency without adding safety. A presented key is hashed, looked up by its hash, and the stored
hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import timedelta

from app.db.api_key_repository import ApiKeyRepository
from app.db.models import ApiKey, utcnow
from config.settings import AuthSettings

logger = logging.getLogger(__name__)

KEY_MARKER = "tx_"
PREFIX_LENGTH = 10
LAST_USED_RESOLUTION = timedelta(minutes=1)
"""``last_used_at`` is written at most this often per key, not on every request."""


@dataclass(frozen=True)
class Principal:
    """Who makes the request. ``key_id`` is None for the bootstrap admin key and when auth is off."""

    key_id: str | None
    name: str
    is_admin: bool

    @property
    def owner_filter(self) -> str | None:
        """The ``api_key_id`` a task must carry to be visible, or None when every task is."""
        return None if self.is_admin else self.key_id


ANONYMOUS = Principal(key_id=None, name="anonymous (auth disabled)", is_admin=True)
BOOTSTRAP_ADMIN = Principal(key_id=None, name="bootstrap admin key", is_admin=True)
KEYLESS_OWNER = Principal(key_id=None, name="the bootstrap admin key or auth disabled", is_admin=True)
"""The owner of records created without a stored key (``api_key_id`` NULL)."""

current_principal: ContextVar[Principal | None] = ContextVar("current_principal", default=None)
"""Set by the auth middleware for each request, so services scope tasks even on routes that
do not pass a principal explicitly. None outside requests (processor, janitor): no scoping."""


def acting(principal: Principal | None) -> Principal | None:
    """``principal``, or by default the caller of the current request (None outside requests)."""
    return principal if principal is not None else current_principal.get()


def owner_filter(principal: Principal | None) -> str | None:
    """The ``api_key_id`` records must carry to be visible to ``principal`` (by default the caller),
    or None when every record is."""
    resolved = acting(principal)
    return resolved.owner_filter if resolved is not None else None


def creator_key(principal: Principal | None) -> str | None:
    """The ``api_key_id`` a record created by ``principal`` (by default the caller) is stored with."""
    resolved = acting(principal)
    return resolved.key_id if resolved is not None else None


def visible_to(api_key_id: str | None, principal: Principal | None) -> bool:
    """Whether a task, batch, workflow or run stored with ``api_key_id`` exists for ``principal``
    (by default the caller): admins see all, other keys their own (another key's answers 404)."""
    owner = owner_filter(principal)
    return owner is None or api_key_id == owner


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_key() -> str:
    return KEY_MARKER + secrets.token_urlsafe(32)


@dataclass(frozen=True)
class CreatedKey:
    key: ApiKey
    plaintext: str


class AuthService:
    def __init__(self, settings: AuthSettings, repository: ApiKeyRepository) -> None:
        self._settings = settings
        self._repository = repository
        self._admin_hash = (
            hash_key(settings.admin_key.get_secret_value()) if settings.admin_key is not None else None
        )

    @property
    def enabled(self) -> bool:
        return self._settings.enabled

    async def authenticate(self, presented: str | None) -> Principal | None:
        """The principal of a presented key, or None when it is missing, unknown or revoked."""
        if not self._settings.enabled:
            return ANONYMOUS
        if not presented:
            return None
        digest = hash_key(presented)
        if self._admin_hash is not None and hmac.compare_digest(digest, self._admin_hash):
            return BOOTSTRAP_ADMIN
        key = await self._repository.by_hash(digest)
        if key is None or key.revoked_at is not None or not hmac.compare_digest(digest, key.key_hash):
            return None
        now = utcnow()
        if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
            try:
                await self._repository.touch(key.id, now)
            except Exception:
                logger.warning("could not record the use of API key %s", key.prefix, exc_info=True)
        return Principal(key_id=key.id, name=key.name, is_admin=key.is_admin)

    async def owner(self, key_id: str | None) -> Principal:
        """The principal a record created by ``key_id`` acts as when it does work later (a workflow
        run): what that key could read through the API. A revoked or unknown key keeps only its own
        records (never admin rights); NULL is the bootstrap admin key or auth off."""
        if key_id is None:
            return KEYLESS_OWNER
        key = await self._repository.get(key_id)
        if key is None:
            return Principal(key_id=key_id, name="unknown key", is_admin=False)
        return Principal(key_id=key.id, name=key.name, is_admin=key.is_admin and key.revoked_at is None)

    async def create(self, name: str, *, is_admin: bool = False) -> CreatedKey:
        plaintext = generate_key()
        key = ApiKey(
            name=name,
            key_hash=hash_key(plaintext),
            prefix=plaintext[:PREFIX_LENGTH],
            is_admin=is_admin,
            created_at=utcnow(),
        )
        await self._repository.add(key)
        logger.info("created API key %s (%s%s)", key.id, name, ", admin" if is_admin else "")
        return CreatedKey(key=key, plaintext=plaintext)

    async def list(self, *, include_revoked: bool = False) -> list[ApiKey]:
        return list(await self._repository.list(include_revoked=include_revoked))

    async def revoke(self, key_id: str) -> ApiKey | None:
        key = await self._repository.revoke(key_id)
        if key is not None:
            logger.info("revoked API key %s (%s)", key.id, key.name)
        return key
