"""Room for the streams: the open-file limit is raised up to the hard limit at startup."""

from __future__ import annotations

import logging

import pytest

from clientstats.api import stream


class Limits:
    """A stand-in for the process's RLIMIT_NOFILE."""

    def __init__(self, soft: int, hard: int) -> None:
        self.soft, self.hard = soft, hard

    def getrlimit(self, _: int) -> tuple[int, int]:
        return self.soft, self.hard

    def setrlimit(self, _: int, limits: tuple[int, int]) -> None:
        self.soft, self.hard = limits


@pytest.mark.parametrize(
    ("soft", "hard", "subscribers", "raised", "warned"),
    [
        (1024, 65536, 5000, 5000 + stream.SPARE_FILES, False),
        (1024, 4096, 5000, 4096, True),
        (100_000, 200_000, 5000, 100_000, False),
    ],
)
def test_the_soft_limit_is_raised_as_far_as_the_hard_one_allows(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    soft: int,
    hard: int,
    subscribers: int,
    raised: int,
    warned: bool,
) -> None:
    limits = Limits(soft, hard)
    monkeypatch.setattr(stream.resource, "getrlimit", limits.getrlimit)
    monkeypatch.setattr(stream.resource, "setrlimit", limits.setrlimit)
    with caplog.at_level(logging.WARNING, logger=stream.log.name):
        stream.make_room_for(subscribers)
    assert (limits.soft, limits.hard) == (raised, hard)
    assert ("CLIENTSTATS_STREAM_MAX_SUBSCRIBERS" in caplog.text) == warned
