"""`clientstats reconcile CLIENT FILE`: a client's pledge list against the booked pledges."""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterable, Iterator

from sqlalchemy import Engine

from clientstats.domain.reconciliation import COLUMNS, Finding, ReportedPledge, compare, parse_row
from clientstats.errors import NotFound, ValidationFailed
from clientstats.services.statistics import normalize_permalink
from clientstats.storage import requests_store
from clientstats.storage.database import read_transaction


class _TextLines:
    """The file's lines as text, each with its line end, as `open(newline="")` would give.

    The bytes are split before they are decoded, so a byte that is not UTF-8 can be named
    by its line and its offset in the file, which a text stream cannot tell.
    """

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self.chunks = chunks
        self.number = 0  # of the line last read

    def __iter__(self) -> Iterator[str]:
        offset = 0
        for chunk in self.chunks:
            # \r and \n never occur inside a UTF-8 sequence, so splitting bytes is safe.
            for raw in chunk.splitlines(keepends=True):
                self.number += 1
                bom = self.number == 1 and raw.startswith(codecs.BOM_UTF8)
                start = len(codecs.BOM_UTF8) if bom else 0
                try:
                    yield raw[start:].decode("utf-8")
                except UnicodeDecodeError as exc:
                    bad = start + exc.start
                    raise ValidationFailed(
                        f"the file is not UTF-8: line {self.number}, byte {offset + bad} "
                        f"(0x{raw[bad]:02x}: {exc.reason})"
                    ) from exc
                offset += len(raw)


def _rows(lines: _TextLines) -> Iterator[ReportedPledge | Finding]:
    reader = csv.DictReader(lines)
    try:
        if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != list(COLUMNS):
            raise ValidationFailed(f"the file's header must be {','.join(COLUMNS)}")
        for row in reader:
            yield parse_row(reader.line_num, row)
    except csv.Error as exc:  # e.g. a field over csv's size limit: not a file we can read
        raise ValidationFailed(f"the file is not a CSV file: line {lines.number}: {exc}") from exc


def reconcile(engine: Engine, client_id: str, chunks: Iterable[bytes]) -> list[Finding]:
    """Every disagreement between the file (UTF-8 CSV bytes) and the client's booked pledges."""
    permalink = normalize_permalink(client_id)
    reported: list[ReportedPledge] = []
    findings: list[Finding] = []
    for parsed in _rows(_TextLines(chunks)):
        if isinstance(parsed, ReportedPledge):
            reported.append(parsed)
        else:
            findings.append(parsed)
    with read_transaction(engine) as conn:
        if not requests_store.client_exists(conn, permalink):
            raise NotFound(f"Couldn't find Client with permalink={permalink}")
        booked = requests_store.pledges_of(conn, permalink)
    return findings + compare(reported, booked)
