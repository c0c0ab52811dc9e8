"""The one place where booked and revoked ledger entries become changes of the aggregates.

A transaction adds up, in memory, what its entries change in every aggregate row (the
statistics' totals and the drill-down lists' counts alike), and writes each touched row once
at the end: one statement per aggregate table, `x = x + delta` for each of the row's
columns, rows in key order (so concurrent writers lock them in the same order), sent to the
driver as tuples or arrays (storage.totals_writes). A new aggregate is one more column
filled in `count` and written in `write`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from clientstats.domain.ledger import Channel, Donation
from clientstats.storage.driver_rows import driver_time, is_sqlite
from clientstats.storage.list_aggregates import recompute_last_donation
from clientstats.storage.totals_writes import (
    CLIENT_COLUMNS,
    ClientProjectRow,
    ProjectRow,
    add_to_client_projects,
    add_to_clients,
    add_to_funds,
    add_to_projects,
)

_DONATED, _DONATIONS, _POOL_IN, _POOL_OUT, _POOL_IN_COUNT, _POOL_OUT_COUNT = range(
    len(CLIENT_COLUMNS)
)


class _ProjectDelta:
    """What a transaction adds to one project's totals."""

    __slots__ = ("count", "latest", "matched", "money", "requested")

    def __init__(self) -> None:
        self.money = 0  # every confirmed entry, matching ones included
        self.requested = 0
        self.count = 0  # confirmed entries other than matching ones
        self.matched = 0
        self.latest: datetime | None = None  # the newest entry booked (not revoked)


class AggregateDeltas:
    """What a transaction's entries change in the aggregates, and whose figures they touch."""

    def __init__(self) -> None:
        self.projects: dict[int, _ProjectDelta] = {}
        # Revoking a project's latest entry makes an older one its last: read back in `write`.
        self.recompute_latest: set[int] = set()
        self.clients: dict[str, list[int]] = {}  # in CLIENT_COLUMNS order
        self.funds: dict[int, list[int]] = {}  # matched money, matched count
        self.client_projects: dict[tuple[str, int], list[int]] = {}  # donated, count
        self.dirty_clients: set[str] = set()
        self.dirty_projects: set[int] = set()

    def _project(self, project_id: int) -> _ProjectDelta:
        delta = self.projects.get(project_id)
        if delta is None:
            delta = self.projects[project_id] = _ProjectDelta()
        self.dirty_projects.add(project_id)
        return delta

    def _client(self, client_id: str) -> list[int]:
        deltas = self.clients.get(client_id)
        if deltas is None:
            deltas = self.clients[client_id] = [0] * len(CLIENT_COLUMNS)
        self.dirty_clients.add(client_id)
        return deltas

    def count(self, donation: Donation, *, sign: int, fund_client: str | None = None) -> None:
        """Move the aggregates by one entry (`sign` -1 revokes it); `fund_client` owns its fund."""
        if donation.failure_code is not None:
            return
        amount = sign * donation.amount_in_cents
        channel = donation.channel
        client_id = donation.client_id
        if donation.project_id is not None:
            self._count_project(donation, donation.project_id, sign, amount)
        if donation.pool_client_id is not None:
            deltas = self._client(donation.pool_client_id)
            deltas[_POOL_IN] += amount
            deltas[_POOL_IN_COUNT] += sign
        if channel is Channel.FORWARDING and client_id is not None:
            deltas = self._client(client_id)
            deltas[_POOL_OUT] += amount
            deltas[_POOL_OUT_COUNT] += sign
        elif channel is Channel.CLIENT and client_id is not None:
            deltas = self._client(client_id)
            deltas[_DONATED] += amount
            deltas[_DONATIONS] += sign
        elif channel is Channel.MATCHING and donation.matching_fund_id is not None:
            fund = self.funds.setdefault(donation.matching_fund_id, [0, 0])
            fund[0] += amount
            fund[1] += sign
            if fund_client is not None:
                self.dirty_clients.add(fund_client)

    def _count_project(self, donation: Donation, project_id: int, sign: int, amount: int) -> None:
        delta = self.projects.get(project_id)
        if delta is None:
            delta = self.projects[project_id] = _ProjectDelta()
        self.dirty_projects.add(project_id)
        delta.money += amount
        channel = donation.channel
        if channel is Channel.MATCHING:
            delta.matched += amount
            return
        delta.count += sign
        if sign < 0:
            self.recompute_latest.add(project_id)
        elif delta.latest is None or donation.created_at > delta.latest:
            delta.latest = donation.created_at
        if channel is Channel.CLIENT and donation.client_id is not None:
            sums = self.client_projects.setdefault((donation.client_id, project_id), [0, 0])
            sums[0] += amount
            sums[1] += sign

    def add_requested(self, project_id: int, amount: int) -> None:
        """A need of the project was added (or changed by `amount`)."""
        self._project(project_id).requested += amount

    def pool_delta(self, client_id: str) -> int:
        """What this transaction has added to the client's pool balance so far."""
        deltas = self.clients.get(client_id)
        return 0 if deltas is None else deltas[_POOL_IN] - deltas[_POOL_OUT]

    def matched_delta(self, fund_id: int) -> int:
        """What this transaction has added to the fund's matched money so far."""
        fund = self.funds.get(fund_id)
        return 0 if fund is None else fund[0]

    def write(self, conn: Connection) -> None:
        """One statement per aggregate table for the touched rows, then start from zero.

        Call after the transaction's ledger rows are written: a revoked project's last
        donation time is read back from them.
        """
        sqlite = is_sqlite(conn)
        projects: list[ProjectRow] = []
        for project_id, d in sorted(self.projects.items()):
            latest = None if project_id in self.recompute_latest else d.latest
            if d.money or d.requested or d.count or d.matched or latest is not None:
                at = None if latest is None else driver_time(latest, sqlite=sqlite)
                projects.append((d.money, d.requested, d.count, d.matched, at, project_id))
        add_to_projects(conn, projects)
        clients = [(*deltas, c) for c, deltas in sorted(self.clients.items()) if any(deltas)]
        add_to_clients(conn, clients)
        funds = [(m, n, f) for f, (m, n) in sorted(self.funds.items()) if m or n]
        add_to_funds(conn, funds)
        client_projects: list[ClientProjectRow] = [
            (c, p, amount, n)
            for (c, p), (amount, n) in sorted(self.client_projects.items())
            if amount or n
        ]
        add_to_client_projects(conn, client_projects)
        if self.recompute_latest:
            recompute_last_donation(conn, sorted(self.recompute_latest))
        self.projects, self.clients, self.funds, self.client_projects = {}, {}, {}, {}
        self.recompute_latest = set()

    def take_dirty(self) -> tuple[set[str], set[int]]:
        """The clients and projects whose figures changed since the last call; then none."""
        dirty = self.dirty_clients, self.dirty_projects
        self.dirty_clients, self.dirty_projects = set(), set()
        return dirty
