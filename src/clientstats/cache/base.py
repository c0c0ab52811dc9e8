"""The statistics cache interface: pre-rendered responses keyed by client permalink."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True, slots=True)
class CachedResponse:
    """A rendered statistics response and what decides whether it is still fresh."""

    permalink: str
    version: int
    body: bytes
    etag: bytes
    expires_at: float  # wall-clock seconds, so that processes sharing a cache agree
    private: bool
    # Built once here so that a cache hit only picks up ready-made ASGI pieces.
    etag_header: tuple[bytes, bytes] = field(init=False, repr=False, compare=False)
    length_header: tuple[bytes, bytes] = field(init=False, repr=False, compare=False)
    body_message: dict[str, object] = field(init=False, repr=False, compare=False)
    # The `http.response.start` message of a 200, by max-age; filled by the endpoint.
    start_messages: dict[int, dict[str, object]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "etag_header", (b"etag", self.etag))
        object.__setattr__(self, "length_header", (b"content-length", b"%d" % len(self.body)))
        body_message = {"type": "http.response.body", "body": self.body}
        object.__setattr__(self, "body_message", body_message)


class StatisticsCache(Protocol):
    """Where rendered responses are kept; every implementation may forget at any time."""

    def get(self, permalink: str) -> CachedResponse | None: ...
    def put(self, entry: CachedResponse) -> None: ...
    def discard(self, permalink: str) -> None: ...


class SharedStatisticsCache(Protocol):
    """A second-level cache shared by processes, keyed by client and version.

    Failures never surface: a shared cache that cannot be reached behaves as empty.
    """

    def fetch(self, permalink: str, version: int) -> CachedResponse | None: ...
    def store(self, entry: CachedResponse) -> None: ...
    def ping(self) -> bool: ...
