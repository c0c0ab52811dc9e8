"""`clientstats reconcile CLIENT FILE`: a client's pledge list against the booked pledges."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import IO

from sqlalchemy import Engine

from clientstats.domain.reconciliation import COLUMNS, Finding, ReportedPledge, compare, parse_row
from clientstats.errors import NotFound, ValidationFailed
from clientstats.services.statistics import normalize_permalink
from clientstats.storage import requests_store
from clientstats.storage.database import read_transaction


def _rows(stream: IO[str]) -> Iterator[ReportedPledge | Finding]:
    reader = csv.DictReader(stream)
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != list(COLUMNS):
        raise ValidationFailed(f"the file's header must be {','.join(COLUMNS)}")
    for row in reader:
        yield parse_row(reader.line_num, row)


def reconcile(engine: Engine, client_id: str, stream: IO[str]) -> list[Finding]:
    """Every disagreement between the file and the client's booked pledges."""
    permalink = normalize_permalink(client_id)
    reported: list[ReportedPledge] = []
    findings: list[Finding] = []
    for parsed in _rows(stream):
        if isinstance(parsed, ReportedPledge):
            reported.append(parsed)
        else:
            findings.append(parsed)
    with read_transaction(engine) as conn:
        if not requests_store.client_exists(conn, permalink):
            raise NotFound(f"Couldn't find Client with permalink={permalink}")
        booked = requests_store.pledges_of(conn, permalink)
    return findings + compare(reported, booked)
