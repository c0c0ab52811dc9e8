"""Client API credentials: issued as random passwords, stored only as Argon2 hashes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Engine

from clientstats.errors import NotFound, Unauthenticated
from clientstats.services.statistics import normalize_permalink
from clientstats.storage import requests_store
from clientstats.storage.database import read_transaction, write_transaction

_hasher = PasswordHasher()
# Each hash takes 64 MiB and most of a core: bound how many run at once, whatever the load.
_hashing = threading.BoundedSemaphore(2)
USERNAME = re.compile(r"[a-z0-9_-]{1,64}")


def issue_credentials(engine: Engine, client_id: str) -> dict[str, str]:
    """Give a client a new API password (the old one stops working); returns it once."""
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


class Authenticator:
    """Checks client credentials; a verified (hash, password) pair skips the slow hash next time.

    The stored hash is read on every check, so a new password takes effect at once.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._verified: dict[str, tuple[str, bytes]] = {}
        self._lock = threading.Lock()

    def authenticate(self, header: str | None) -> str:
        """The permalink of the client the Basic credentials belong to; raises Unauthenticated."""
        credentials = parse_basic(header)
        if credentials is None:
            raise Unauthenticated("HTTP Basic credentials of the client are required")
        username, password = credentials
        if not USERNAME.fullmatch(username) or "\x00" in password:
            with _hashing:  # spend the same time as for a known user
                _hasher.hash(password.replace("\x00", ""))
            raise Unauthenticated("Invalid client credentials")
        with read_transaction(self.engine) as conn:
            stored = requests_store.credentials_of(conn, username)
        if stored is None:
            with _hashing:  # spend the same time as for a known user
                _hasher.hash(password)
            raise Unauthenticated("Invalid client credentials")
        client_id, password_hash = stored
        digest = hashlib.sha256(password.encode()).digest()
        with self._lock:
            cached = self._verified.get(username)
        if (
            cached is not None
            and cached[0] == password_hash
            and hmac.compare_digest(cached[1], digest)
        ):
            return client_id
        try:
            with _hashing:
                _hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError) as exc:
            raise Unauthenticated("Invalid client credentials") from exc
        with self._lock:
            self._verified[username] = (password_hash, digest)
        return client_id
