"""Reading `GET /metrics` in tests: samples by name and labels, parsed by prometheus_client."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ADMIN_TOKEN

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
STATISTICS = "/{locale}/api_v4/clients/{client_id}/project_statistics"


def scrape(base_url: str, token: str = ADMIN_TOKEN) -> Samples:
    """Every sample of one scrape, keyed by (sample name, labels)."""
    response = httpx.get(
        f"{base_url}/metrics", headers={"authorization": f"Bearer {token}"}, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist (nothing was counted)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape_until(
    base_url: str, done: Callable[[Samples], bool], *, seconds: float = 20.0
) -> Samples:
    """Scrape until `done` holds (other processes flush every second) or time runs out."""
    deadline = time.monotonic() + seconds
    while True:
        samples = scrape(base_url)
        if done(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)
