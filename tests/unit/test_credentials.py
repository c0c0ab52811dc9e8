"""Checking client credentials: one hash per distinct check, apart from the database timeout."""

from __future__ import annotations

import asyncio
import base64
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientstats.api.errors import EXCEPTION_HANDLERS
from clientstats.errors import Overloaded, Unauthenticated
from clientstats.services import credentials
from clientstats.services.credentials import Authenticator, issue_credentials
from clientstats.services.importing import import_lines
from clientstats.storage.database import make_engine
from clientstats.storage.schema import ensure_schema

GUARD_SECONDS = 20  # only against hanging


class CountingHasher(PasswordHasher):
    """A cheap Argon2 hasher that records every hash and verify and can be held or slowed."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=8, parallelism=1)
        self.verified: list[str] = []
        self.hashed: list[str] = []
        self.delay = 0.0
        self.release = threading.Event()
        self.release.set()
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.verified.append(str(password))
        self.release.wait(GUARD_SECONDS)
        time.sleep(self.delay)
        return super().verify(hash, password)

    def hash(self, password: str | bytes, **kwargs: Any) -> str:
        with self._lock:
            self.hashed.append(str(password))
        return super().hash(password, **kwargs)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(credentials, "_hasher", counting)
    return counting


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = make_engine(f"sqlite:///{tmp_path / 'clientstats.db'}")
    ensure_schema(eng)
    assert import_lines(eng, [b'{"event": "client", "id": "vf", "name": "Volksfreund"}']).ok
    yield eng
    eng.dispose()


@pytest.fixture
def password(engine: Engine, hasher: CountingHasher) -> str:
    issued = issue_credentials(engine, "vf")
    hasher.hashed.clear()
    return issued["password"]


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


async def outcome(authenticator: Authenticator, header: str, timeout: float = 5.0) -> str:
    """The client id, or the name of the error the check raised."""
    try:
        return await authenticator.authenticate(header, database_timeout=timeout)
    except (Unauthenticated, Overloaded) as exc:
        return type(exc).__name__


def test_simultaneous_checks_of_the_same_credentials_share_one_hash(
    engine: Engine, hasher: CountingHasher, password: str
) -> None:
    # The hash outlasts the database timeout: hashing is no database work, and not bounded
    # by its timeout (the stored hash is read well within it).
    hasher.delay = 1.5

    async def crowd() -> list[str]:
        authenticator = Authenticator(engine)
        return await asyncio.gather(
            *(outcome(authenticator, basic("vf", password), timeout=1.0) for _ in range(24))
        )

    assert asyncio.run(crowd()) == ["vf"] * 24
    assert hasher.verified == [password]


def test_wrong_passwords_cost_a_hash_each_and_leave_the_right_one_alone(
    engine: Engine, hasher: CountingHasher, password: str
) -> None:
    hasher.delay = 0.2
    authenticator = Authenticator(engine)
    headers = [basic("vf", p) for p in (password, "wrong-1", "wrong-2") for _ in range(6)]

    async def mixed() -> list[str]:
        return await asyncio.gather(*(outcome(authenticator, h) for h in headers))

    assert asyncio.run(mixed()) == ["vf"] * 6 + ["Unauthenticated"] * 12
    assert sorted(hasher.verified) == sorted([password, "wrong-1", "wrong-2"])
    # A failure is not remembered: the same wrong password costs a full hash again...
    assert asyncio.run(outcome(authenticator, basic("vf", "wrong-1"))) == "Unauthenticated"
    assert hasher.verified.count("wrong-1") == 2
    # ...while the right one, verified once, is not hashed again.
    assert asyncio.run(outcome(authenticator, basic("vf", password))) == "vf"
    assert hasher.verified.count(password) == 1


def test_unknown_users_cost_a_hash_too(
    engine: Engine, hasher: CountingHasher, password: str
) -> None:
    authenticator = Authenticator(engine)
    for header in (basic("nobody", password), basic("Not A User!", password)):
        assert asyncio.run(outcome(authenticator, header)) == "Unauthenticated"
    assert hasher.hashed == [password, password]
    assert hasher.verified == []


def test_too_many_checks_at_once_is_busy_not_a_database_timeout(
    engine: Engine, hasher: CountingHasher, password: str
) -> None:
    hasher.release.clear()  # the hashes wait until released
    authenticator = Authenticator(engine, max_pending=2)

    async def flood() -> tuple[list[str], str]:
        held = [
            asyncio.create_task(outcome(authenticator, basic("vf", p)))
            for p in (password, "wrong-1")
        ]
        deadline = time.monotonic() + GUARD_SECONDS
        while len(hasher.verified) < 2:  # both checks are hashing
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        busy = await outcome(authenticator, basic("vf", "wrong-2"))
        hasher.release.set()
        return await asyncio.gather(*held), busy

    held, busy = asyncio.run(flood())
    assert (held, busy) == (["vf", "Unauthenticated"], "Overloaded")
    assert sorted(hasher.verified) == sorted([password, "wrong-1"])


def test_busy_is_a_503_with_retry_after_in_the_error_format() -> None:
    async def busy(request: Request) -> Response:
        raise Overloaded("Too many password checks at once; retry")

    async def get() -> httpx.Response:
        app = Starlette(routes=[Route("/", busy)], exception_handlers=EXCEPTION_HANDLERS)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/")

    response = asyncio.run(get())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "name": "GeneralError",
        "status": "service_unavailable",
        "status_code": 503,
        "reason": "Service Unavailable",
        "message": "Too many password checks at once; retry",
        "links": [],
    }
