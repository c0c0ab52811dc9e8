"""The one place where booked and revoked ledger entries become changes of the aggregates.

A transaction adds up, in memory, what its entries change in every aggregate row, and
writes each touched row once at the end with one `UPDATE ... SET x = x + delta` (rows in
key order, so concurrent writers lock them in the same order). A new aggregate is one more
counter filled in `count` (or `add_requested`) and one more statement in `write`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from sqlalchemy import Connection, bindparam, update

from clientstats.domain.ledger import Channel, Donation
from clientstats.storage.list_aggregates import ListDeltas
from clientstats.storage.tables import client_totals, matching_fund_totals, project_totals

CLIENT_COLUMNS = (
    "client_donated_in_cents",
    "client_donations_count",
    "pool_in_cents",
    "pool_out_cents",
    "pool_in_count",
    "pool_out_count",
)

_ADD_PROJECT = (
    update(project_totals)
    .where(project_totals.c.project_id == bindparam("p"))
    .values(
        money_in_cents=project_totals.c.money_in_cents + bindparam("m"),
        requested_in_cents=project_totals.c.requested_in_cents + bindparam("r"),
    )
)
_ADD_CLIENT = (
    update(client_totals)
    .where(client_totals.c.client_id == bindparam("c"))
    .values({name: client_totals.c[name] + bindparam(f"d_{name}") for name in CLIENT_COLUMNS})
)
_ADD_FUND = (
    update(matching_fund_totals)
    .where(matching_fund_totals.c.fund_id == bindparam("f"))
    .values(matched_in_cents=matching_fund_totals.c.matched_in_cents + bindparam("m"))
)


class AggregateDeltas:
    """What a transaction's entries change in the aggregates, and whose figures they touch."""

    def __init__(self) -> None:
        self.money: Counter[int] = Counter()  # project -> money in
        self.requested: Counter[int] = Counter()  # project -> requested amount
        self.clients: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.matched: Counter[int] = Counter()  # fund -> matched money
        self.lists = ListDeltas()  # the aggregates behind the drill-down lists
        self.dirty_clients: set[str] = set()
        self.dirty_projects: set[int] = set()

    def count(self, donation: Donation, *, sign: int, fund_client: str | None = None) -> None:
        """Move the aggregates by one entry (`sign` -1 revokes it); `fund_client` owns its fund."""
        if donation.failure_code is not None:
            return
        self.lists.count(donation, sign=sign)
        amount = sign * donation.amount_in_cents
        channel = donation.channel
        if donation.project_id is not None:
            self.money[donation.project_id] += amount
            self.dirty_projects.add(donation.project_id)
        if donation.pool_client_id is not None:
            self.clients[donation.pool_client_id]["pool_in_cents"] += amount
            self.clients[donation.pool_client_id]["pool_in_count"] += sign
            self.dirty_clients.add(donation.pool_client_id)
        if channel is Channel.FORWARDING and donation.client_id is not None:
            self.clients[donation.client_id]["pool_out_cents"] += amount
            self.clients[donation.client_id]["pool_out_count"] += sign
            self.dirty_clients.add(donation.client_id)
        if channel is Channel.CLIENT and donation.client_id is not None:
            deltas = self.clients[donation.client_id]
            deltas["client_donated_in_cents"] += amount
            deltas["client_donations_count"] += sign
            self.dirty_clients.add(donation.client_id)
        if channel is Channel.MATCHING and donation.matching_fund_id is not None:
            self.matched[donation.matching_fund_id] += amount
            if fund_client is not None:
                self.dirty_clients.add(fund_client)

    def add_requested(self, project_id: int, amount: int) -> None:
        """A need of the project was added (or changed by `amount`)."""
        self.requested[project_id] += amount
        self.dirty_projects.add(project_id)

    def pool_delta(self, client_id: str) -> int:
        """What this transaction has added to the client's pool balance so far."""
        deltas = self.clients.get(client_id)
        return 0 if deltas is None else deltas["pool_in_cents"] - deltas["pool_out_cents"]

    def write(self, conn: Connection) -> None:
        """One UPDATE per touched aggregate row, then start from zero.

        Call after the transaction's ledger rows are written: a revoked project's last
        donation time is read back from them.
        """
        projects = [
            {"p": p, "m": self.money[p], "r": self.requested[p]}
            for p in sorted(set(self.money) | set(self.requested))
            if self.money[p] or self.requested[p]
        ]
        if projects:
            conn.execute(_ADD_PROJECT, projects)
        clients: list[dict[str, Any]] = [
            {"c": c, **{f"d_{k}": deltas[k] for k in CLIENT_COLUMNS}}
            for c, deltas in sorted(self.clients.items())
            if any(deltas[k] for k in CLIENT_COLUMNS)
        ]
        if clients:
            conn.execute(_ADD_CLIENT, clients)
        funds = [{"f": f, "m": m} for f, m in sorted(self.matched.items()) if m]
        if funds:
            conn.execute(_ADD_FUND, funds)
        self.lists.flush(conn)
        self.lists = ListDeltas()
        self.money, self.requested, self.matched = Counter(), Counter(), Counter()
        self.clients = defaultdict(Counter)

    def take_dirty(self) -> tuple[set[str], set[int]]:
        """The clients and projects whose figures changed since the last call; then none."""
        dirty = self.dirty_clients, self.dirty_projects
        self.dirty_clients, self.dirty_projects = set(), set()
        return dirty
