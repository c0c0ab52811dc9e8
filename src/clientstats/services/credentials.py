"""Client API credentials: issued as random passwords, stored only as Argon2 hashes."""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import re
import secrets
from collections.abc import Callable
from functools import partial
from hmac import compare_digest

from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine

from clientstats.errors import NotFound, Overloaded, Unauthenticated
from clientstats.services.blocking import run_blocking
from clientstats.services.statistics import normalize_permalink
from clientstats.storage import requests_store
from clientstats.storage.database import read_transaction, write_transaction

_hasher = PasswordHasher()
USERNAME = re.compile(r"[a-z0-9_-]{1,64}")


def issue_credentials(engine: Engine, client_id: str) -> dict[str, str]:
    """Give a client a new API password (the old one stops working); returns it once.

    The client gets a new version in the change feed too (storage does it with every
    credentials write): every process forgets which credentials opened its cached private
    pages within one read of the feed.
    """
    permalink = normalize_permalink(client_id)
    password = secrets.token_urlsafe(24)
    with write_transaction(engine) as conn:
        if not requests_store.set_credentials(
            conn, client_id=permalink, username=permalink, password_hash=_hasher.hash(password)
        ):
            raise NotFound(f"Couldn't find Client with permalink={permalink}")
    return {"username": permalink, "password": password}


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(username, password) from an `Authorization: Basic ...` header."""
    if not header:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, sep, password = decoded.partition(":")
    return (username, password) if sep else None


# Each hash takes 64 MiB and most of a core: bound how many run at once, whatever the load.
HASHING_SLOTS = 2
# Distinct password checks running or waiting for a slot; beyond this the service is busy
# (at ~0.5 s per check and two slots, the last of them waits about 8 s).
MAX_PENDING_CHECKS = 32

_Key = tuple[str, bytes, str | None]  # (username, password digest, stored hash)


class Authenticator:
    """Checks client credentials; a verified (hash, password) pair skips the slow hash next time.

    The stored hash is read on every check, so a new password takes effect at once. Only
    that read is database work and bounded by the database timeout; the hash runs apart
    from it. Simultaneous checks of the same credentials share one hash (a client's burst
    at a cold start costs one hash, not one per request); any other password, a wrong one
    too, is a check of its own and costs a full hash. Only successes are remembered.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        hashing_slots: int = HASHING_SLOTS,
        max_pending: int = MAX_PENDING_CHECKS,
    ) -> None:
        self.engine = engine
        self.max_pending = max_pending
        self._verified: dict[str, tuple[str, bytes]] = {}
        self._checks: dict[_Key, asyncio.Task[bool]] = {}
        self._slots = asyncio.Semaphore(hashing_slots)

    async def authenticate(self, header: str | None, *, database_timeout: float) -> str:
        """The permalink of the client the Basic credentials belong to; raises Unauthenticated."""
        credentials = parse_basic(header)
        if credentials is None:
            raise Unauthenticated("HTTP Basic credentials of the client are required")
        username, password = credentials
        digest = hashlib.sha256(password.encode()).digest()
        stored = None
        if USERNAME.fullmatch(username) and "\x00" not in password:
            stored = await run_blocking(database_timeout, partial(self._stored, username))
        if stored is None:
            # Spend the same time as for a known user: the answer must not tell them apart.
            await self._check((username, digest, None), partial(_spend, password))
            raise Unauthenticated("Invalid client credentials")
        client_id, password_hash = stored
        cached = self._verified.get(username)
        if cached is not None and cached[0] == password_hash and compare_digest(cached[1], digest):
            return client_id
        key = (username, digest, password_hash)
        if not await self._check(key, partial(_verify, password_hash, password)):
            raise Unauthenticated("Invalid client credentials")
        return client_id

    def _stored(self, username: str) -> tuple[str, str] | None:
        with read_transaction(self.engine) as conn:
            return requests_store.credentials_of(conn, username)

    async def _check(self, key: _Key, compute: Callable[[], bool]) -> bool:
        """The outcome of `compute`, shared with every caller asking for the same key meanwhile."""
        check = self._checks.get(key)
        if check is None:
            if len(self._checks) >= self.max_pending:
                raise Overloaded("Too many password checks at once; retry")
            check = self._checks[key] = asyncio.create_task(self._run_check(key, compute))
        # Shielded: a caller that goes away must not cancel the check the others wait for.
        return await asyncio.shield(check)

    async def _run_check(self, key: _Key, compute: Callable[[], bool]) -> bool:
        try:
            async with self._slots:
                verified = await to_thread.run_sync(compute)
            username, digest, password_hash = key
            if verified and password_hash is not None:
                # Before the check is forgotten: a caller arriving after it finds the one or
                # the other, and never hashes the same password again.
                self._verified[username] = (password_hash, digest)
            return verified
        finally:
            del self._checks[key]


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _spend(password: str) -> bool:
    _hasher.hash(password.replace("\x00", ""))
    return False
