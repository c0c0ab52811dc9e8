"""`serve --workers 2`: one scrape sums the requests every worker answered."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.api.conftest import new_client_events, post_events
from tests.conftest import free_port
from tests.reliability.test_serve import Serve, wait_until_gone
from tests.scrape import STATISTICS, scrape, scrape_until, value

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc, as Linux has it")
REQUESTS = 400
NAME = "clientstats_http_requests_total"


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Serve]:
    server = Serve(f"sqlite:///{tmp_path / 'db.sqlite'}", free_port(), "--workers", "2")
    try:
        server.wait_until_serving(children=2)
        yield server
    finally:
        server.end()


def metrics_directory(worker: int) -> Path | None:
    """The metrics directory a worker keeps its files open in (found through /proc)."""
    for fd in Path(f"/proc/{worker}/fd").iterdir():
        try:
            target = Path(os.readlink(fd))
        except OSError:
            continue
        if target.name.startswith("counter_") and target.suffix == ".db":
            return target.parent
    return None


def statistics_200_of(directory: Path, pid: int, scratch: Path) -> float:
    """What one process has counted of the statistics route, from its own file alone."""
    scratch.mkdir()
    shutil.copy(directory / f"counter_{pid}.db", scratch)
    for family in MultiProcessCollector(None, path=str(scratch)).collect():
        for sample in family.samples:
            if sample.name == NAME and sample.labels == {"route": STATISTICS, "status": "200"}:
                return sample.value
    return 0.0


def test_requests_spread_over_both_workers_sum_in_one_scrape(
    two_workers: Serve, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{two_workers.port}"
    assert post_events(base, new_client_events("spread")).status_code == 200
    url = f"{base}/de/api_v4/clients/spread/project_statistics.json"

    def one_request(_: int) -> int:
        # A new connection each: the kernel hands them to whichever worker accepts first.
        return httpx.get(url, headers={"connection": "close"}, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one_request, range(REQUESTS))) == {200}

    samples = scrape_until(
        base, lambda s: value(s, NAME, route=STATISTICS, status="200") >= REQUESTS
    )
    assert value(samples, NAME, route=STATISTICS, status="200") == REQUESTS

    workers = sorted(two_workers.children())
    assert len(workers) == 2
    directories = {metrics_directory(pid) for pid in workers}
    assert len(directories) == 1 and None not in directories
    directory = directories.pop()
    assert directory is not None and directory.name.startswith("clientstats-metrics-")
    per_worker = [statistics_200_of(directory, pid, tmp_path / str(pid)) for pid in workers]
    assert sum(per_worker) == REQUESTS
    assert all(count > 0 for count in per_worker), per_worker  # both answered some

    # A worker killed outright: its counts (flushed every second) stay in the sums, its
    # live gauge goes, and the replacement counts on from there.
    victim = workers[0]
    assert (directory / f"gauge_livemax_{victim}.db").exists()
    os.kill(victim, signal.SIGKILL)
    wait_until_gone({victim})
    deadline = time.monotonic() + 60
    while (directory / f"gauge_livemax_{victim}.db").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not (directory / f"gauge_livemax_{victim}.db").exists()
    two_workers.wait_until_serving(children=2)
    after = scrape(base)
    assert value(after, NAME, route=STATISTICS, status="200") == REQUESTS

    # A stop removes the directory.
    two_workers.process.send_signal(signal.SIGTERM)
    assert two_workers.process.wait(timeout=60) == 0
    assert not directory.exists()
