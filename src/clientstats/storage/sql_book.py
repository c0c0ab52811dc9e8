"""The stored book of record: booking.LedgerBook over one write transaction.

Reads are cached for the transaction; ledger rows and aggregate deltas are collected and
written in bulk by `flush`, so a batch of events costs a few statements, not several per event.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from clientstats.domain.events import RevocationEvent
from clientstats.domain.ledger import (
    Channel,
    Client,
    Donation,
    FundBudget,
    MatchingFund,
    Need,
    Project,
)
from clientstats.storage import reference_rows as rows
from clientstats.storage.change_feed import record_change
from clientstats.storage.list_aggregates import ListDeltas
from clientstats.storage.tables import (
    client_projects,
    client_totals,
    clients,
    deferred_revocations,
    donations,
    matching_fund_projects,
    matching_fund_totals,
    matching_funds,
    needs,
    project_totals,
    projects,
    revocations,
)
from clientstats.storage.token_locks import lock_tokens

_CLIENT_COLUMNS = (
    "client_donated_in_cents",
    "client_donations_count",
    "pool_in_cents",
    "pool_out_cents",
    "pool_in_count",
    "pool_out_count",
)
_IN_CHUNK = 500
_PROJECT_BY_ID = select(projects).where(projects.c.id == bindparam("project_id"))


def _chunks(values: list[Any]) -> Iterable[list[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


class SqlBook:
    """booking.LedgerBook inside one write transaction; call `flush` before commit."""

    def __init__(self, conn: Connection, *, now: datetime) -> None:
        self.conn = conn
        self.now = now
        self._clients: dict[str, Client | None] = {}
        self._projects: dict[int, Project | None] = {}
        self._needs: dict[int, Need | None] = {}
        self._funds: dict[int, MatchingFund | None] = {}
        self._donations: dict[str, Donation | None] = {}
        self._revoked: dict[str, bool] = {}
        self._deferred: dict[str, RevocationEvent | None] = {}
        self._references: dict[tuple[str, str], str | None] = {}
        self._matching_of: dict[str, Donation | None] = {}
        self._fund_ids: dict[int, list[int]] = {}
        self._stored_pool: dict[str, int] = {}
        self._stored_matched: dict[int, int] = {}
        self._new_donations: list[dict[str, Any]] = []
        self._new_revocations: list[dict[str, Any]] = []
        self._new_deferred: list[dict[str, Any]] = []
        self._money: Counter[int] = Counter()
        self._requested: Counter[int] = Counter()
        self._client_deltas: dict[str, Counter[str]] = defaultdict(Counter)
        self._matched: Counter[int] = Counter()
        self._list_deltas = ListDeltas()
        self._dirty_clients: set[str] = set()
        self._dirty_projects: set[int] = set()

    # -- reads ---------------------------------------------------------------------------

    def prefetch(
        self,
        *,
        tokens: Iterable[str],
        references: Iterable[tuple[str, str]],
        project_ids: Iterable[int] = (),
        revoked: Iterable[str] = (),
    ) -> None:
        """Load in a few queries the donations, references and projects a batch names.

        Locks the tokens first (`revoked`: those the batch revokes), see storage.token_locks.
        """
        wanted = sorted({t for t in tokens if t not in self._donations})
        lock_tokens(self.conn, booked=wanted, revoked=revoked)
        self._prefetch_tokens(wanted)
        by_client: dict[str, list[str]] = defaultdict(list)
        for ref in sorted({r for r in references if r not in self._references}):
            self._references[ref] = None
            by_client[ref[0]].append(ref[1])
        for client_id, refs in by_client.items():
            for chunk in _chunks(refs):
                # Both columns, so the (client_id, client_reference) unique index serves it.
                found = self.conn.execute(
                    select(donations.c.token, donations.c.client_reference).where(
                        donations.c.client_id == client_id,
                        donations.c.client_reference.in_(chunk),
                    )
                )
                for token, reference in found:
                    self._references[(client_id, reference)] = token
        self._prefetch_projects(sorted({p for p in project_ids if p not in self._projects}))

    def _prefetch_tokens(self, wanted: list[str]) -> None:
        for chunk in _chunks(wanted):
            for t in chunk:
                self._donations[t] = None
                self._revoked[t] = False
                self._deferred[t] = None
            found = self.conn.execute(select(donations).where(donations.c.token.in_(chunk)))
            for row in found:
                self._donations[row.token] = rows.donation(row)
            revoked = self.conn.execute(
                select(revocations.c.token).where(revocations.c.token.in_(chunk))
            )
            for (token,) in revoked:
                self._revoked[token] = True
            self._prefetch_deferred(chunk)

    def _prefetch_deferred(self, tokens: list[str]) -> None:
        kept = select(deferred_revocations.c.token, deferred_revocations.c.created_at)
        for token, created_at in self.conn.execute(
            kept.where(deferred_revocations.c.token.in_(tokens))
        ):
            self._deferred[token] = RevocationEvent(token, created_at)

    def _prefetch_projects(self, wanted: list[int]) -> None:
        for chunk in _chunks(wanted):
            for project_id in chunk:
                self._projects[project_id] = None
                self._fund_ids[project_id] = []
            for row in self.conn.execute(select(projects).where(projects.c.id.in_(chunk))):
                self._projects[row.id] = rows.project(row)
            links = self.conn.execute(
                select(matching_fund_projects.c.project_id, matching_fund_projects.c.fund_id)
                .where(matching_fund_projects.c.project_id.in_(chunk))
                .order_by(matching_fund_projects.c.fund_id)
            )
            for project_id, fund_id in links:
                self._fund_ids[project_id].append(fund_id)

    def get_client(self, permalink: str) -> Client | None:
        if permalink not in self._clients:
            row = self.conn.execute(select(clients).where(clients.c.permalink == permalink)).first()
            self._clients[permalink] = None if row is None else rows.client(row)
        return self._clients[permalink]

    def get_project(self, project_id: int) -> Project | None:
        if project_id not in self._projects:
            row = self.conn.execute(_PROJECT_BY_ID, {"project_id": project_id}).first()
            self._projects[project_id] = None if row is None else rows.project(row)
        return self._projects[project_id]

    def get_need(self, need_id: int) -> Need | None:
        if need_id not in self._needs:
            row = self.conn.execute(select(needs).where(needs.c.id == need_id)).first()
            self._needs[need_id] = None if row is None else rows.need(row)
        return self._needs[need_id]

    def get_matching_fund(self, fund_id: int) -> MatchingFund | None:
        if fund_id not in self._funds:
            self._funds[fund_id] = rows.load_matching_fund(self.conn, fund_id)
        return self._funds[fund_id]

    def get_donation(self, token: str) -> Donation | None:
        if token not in self._donations:
            self._prefetch_tokens([token])
        return self._donations[token]

    def token_for_client_reference(self, client_id: str, reference: str) -> str | None:
        key = (client_id, reference)
        if key not in self._references:
            self.prefetch(tokens=(), references=[key])
        return self._references[key]

    def is_revoked(self, token: str) -> bool:
        if token not in self._revoked:
            found = self.conn.execute(select(revocations.c.id).where(revocations.c.token == token))
            self._revoked[token] = found.first() is not None
        return self._revoked[token]

    def deferred_revocation(self, token: str) -> RevocationEvent | None:
        if token not in self._deferred:
            self._deferred[token] = None
            self._prefetch_deferred([token])
        return self._deferred[token]

    def is_member(self, client_id: str, project_id: int) -> bool:
        query = select(client_projects.c.client_id).where(
            client_projects.c.client_id == client_id, client_projects.c.project_id == project_id
        )
        return self.conn.execute(query).first() is not None

    def pool_balance(self, client_id: str) -> int:
        if client_id not in self._stored_pool:
            # Locked until commit: concurrent writers must not both spend the same balance.
            query = (
                select(client_totals.c.pool_in_cents - client_totals.c.pool_out_cents)
                .where(client_totals.c.client_id == client_id)
                .with_for_update()
            )
            self._stored_pool[client_id] = int(self.conn.execute(query).scalar() or 0)
        deltas = self._client_deltas[client_id]
        return self._stored_pool[client_id] + deltas["pool_in_cents"] - deltas["pool_out_cents"]

    def matching_budgets(self, project_id: int) -> list[FundBudget]:
        if project_id not in self._fund_ids:
            query = (
                select(matching_fund_projects.c.fund_id)
                .where(matching_fund_projects.c.project_id == project_id)
                .order_by(matching_fund_projects.c.fund_id)
            )
            self._fund_ids[project_id] = list(self.conn.execute(query).scalars())
        budgets = []
        for fund_id in self._fund_ids[project_id]:
            fund = self.get_matching_fund(fund_id)
            if fund is None or not fund.matches(project_id):
                continue
            remaining = fund.provided_amount_in_cents - self._fund_matched(fund_id)
            budgets.append(FundBudget(fund_id, fund.maximum_matching_amount_in_cents, remaining))
        return budgets

    def _fund_matched(self, fund_id: int) -> int:
        if fund_id not in self._stored_matched:
            # Locked until commit: concurrent writers must not both spend the same budget.
            query = (
                select(matching_fund_totals.c.matched_in_cents)
                .where(matching_fund_totals.c.fund_id == fund_id)
                .with_for_update()
            )
            self._stored_matched[fund_id] = int(self.conn.execute(query).scalar() or 0)
        return self._stored_matched[fund_id] + self._matched[fund_id]

    def matching_donation_of(self, token: str) -> Donation | None:
        if token not in self._matching_of:
            row = self.conn.execute(
                select(donations).where(donations.c.matched_token == token)
            ).first()
            self._matching_of[token] = None if row is None else rows.donation(row)
        return self._matching_of[token]

    # -- reference data writes -----------------------------------------------------------

    def save_client(self, client: Client) -> None:
        values = rows.client_values(client)
        if self.get_client(client.permalink) is None:
            self.conn.execute(insert(clients).values(values))
            self.conn.execute(insert(client_totals).values(client_id=client.permalink))
        else:
            self.conn.execute(
                update(clients).where(clients.c.permalink == client.permalink).values(values)
            )
        self._clients[client.permalink] = client
        self._dirty_clients.add(client.permalink)

    def save_project(self, project: Project) -> None:
        values = rows.project_values(project)
        if self.get_project(project.id) is None:
            self.conn.execute(insert(projects).values(values))
            self.conn.execute(insert(project_totals).values(project_id=project.id))
        else:
            self.conn.execute(update(projects).where(projects.c.id == project.id).values(values))
        self._projects[project.id] = project
        self._dirty_projects.add(project.id)

    def save_need(self, need: Need) -> None:
        old = self.get_need(need.id)
        values = rows.need_values(need)
        if old is None:
            self.conn.execute(insert(needs).values(values))
        else:
            self.conn.execute(update(needs).where(needs.c.id == need.id).values(values))
            self._requested[old.project_id] -= old.requested_amount_in_cents
            self._dirty_projects.add(old.project_id)
        self._requested[need.project_id] += need.requested_amount_in_cents
        self._needs[need.id] = need
        self._dirty_projects.add(need.project_id)

    def save_matching_fund(self, fund: MatchingFund) -> None:
        old = self.get_matching_fund(fund.id)
        values = rows.matching_fund_values(fund)
        if old is None:
            self.conn.execute(insert(matching_funds).values(values))
            self.conn.execute(insert(matching_fund_totals).values(fund_id=fund.id))
        else:
            self.conn.execute(
                update(matching_funds).where(matching_funds.c.id == fund.id).values(values)
            )
            self.conn.execute(
                delete(matching_fund_projects).where(matching_fund_projects.c.fund_id == fund.id)
            )
            self._dirty_clients.add(old.client_id)
        if fund.project_ids:
            links = [{"fund_id": fund.id, "project_id": p} for p in sorted(fund.project_ids)]
            self.conn.execute(insert(matching_fund_projects), links)
        self._funds[fund.id] = fund
        self._fund_ids.clear()
        self._dirty_clients.add(fund.client_id)

    def set_member(self, client_id: str, project_id: int, member: bool) -> None:
        if member:
            self.conn.execute(
                insert(client_projects).values(client_id=client_id, project_id=project_id)
            )
        else:
            self.conn.execute(
                delete(client_projects).where(
                    client_projects.c.client_id == client_id,
                    client_projects.c.project_id == project_id,
                )
            )
        self._dirty_clients.add(client_id)

    # -- ledger writes -------------------------------------------------------------------

    def book(self, donation: Donation) -> None:
        self._new_donations.append(rows.donation_values(donation, booked_at=self.now))
        self._donations[donation.token] = donation
        self._revoked[donation.token] = False
        if donation.client_id is not None and donation.client_reference is not None:
            self._references[(donation.client_id, donation.client_reference)] = donation.token
        if donation.matched_token is not None:
            self._matching_of[donation.matched_token] = donation
        self._count(donation, sign=1)

    def revoke(self, donation: Donation, event: RevocationEvent) -> None:
        self._new_revocations.append(
            {"token": donation.token, "created_at": event.created_at, "booked_at": self.now}
        )
        self._revoked[donation.token] = True
        self._count(donation, sign=-1)

    def defer_revocation(self, event: RevocationEvent) -> None:
        self._new_deferred.append(
            {"token": event.token, "created_at": event.created_at, "booked_at": self.now}
        )
        self._deferred[event.token] = event

    def _count(self, donation: Donation, *, sign: int) -> None:
        """Move the aggregates by one entry; these deltas are what keeps statistics O(projects)."""
        if not donation.moved_money:
            return
        amount = sign * donation.amount_in_cents
        self._list_deltas.count(donation, sign=sign)
        if donation.project_id is not None:
            self._money[donation.project_id] += amount
            self._dirty_projects.add(donation.project_id)
        if donation.pool_client_id is not None:
            self._client_deltas[donation.pool_client_id]["pool_in_cents"] += amount
            self._client_deltas[donation.pool_client_id]["pool_in_count"] += sign
            self._dirty_clients.add(donation.pool_client_id)
        if donation.channel is Channel.FORWARDING and donation.client_id is not None:
            self._client_deltas[donation.client_id]["pool_out_cents"] += amount
            self._client_deltas[donation.client_id]["pool_out_count"] += sign
            self._dirty_clients.add(donation.client_id)
        if donation.channel is Channel.CLIENT and donation.client_id is not None:
            self._client_deltas[donation.client_id]["client_donated_in_cents"] += amount
            self._client_deltas[donation.client_id]["client_donations_count"] += sign
            self._dirty_clients.add(donation.client_id)
        if donation.channel is Channel.MATCHING and donation.matching_fund_id is not None:
            self._matched[donation.matching_fund_id] += amount
            fund = self.get_matching_fund(donation.matching_fund_id)
            if fund is not None:
                self._dirty_clients.add(fund.client_id)

    # -- flush ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the collected ledger rows, aggregate deltas and cache versions."""
        if self._new_donations:
            self.conn.execute(insert(donations), self._new_donations)
        if self._new_revocations:
            self.conn.execute(insert(revocations), self._new_revocations)
        if self._new_deferred:
            self.conn.execute(insert(deferred_revocations), self._new_deferred)
        self._flush_aggregates()
        self._list_deltas.flush(self.conn)
        self._list_deltas = ListDeltas()
        self._bump_versions()
        self._new_donations, self._new_revocations, self._new_deferred = [], [], []
        self._stored_pool.clear()
        self._stored_matched.clear()
        self._money, self._requested, self._matched = Counter(), Counter(), Counter()
        self._client_deltas = defaultdict(Counter)
        self._dirty_clients, self._dirty_projects = set(), set()

    def _flush_aggregates(self) -> None:
        project_ids = sorted(set(self._money) | set(self._requested))
        project_rows = [
            {"p": p, "m": self._money[p], "r": self._requested[p]}
            for p in project_ids
            if self._money[p] or self._requested[p]
        ]
        if project_rows:
            rows.add_project_totals(self.conn, project_rows)
        client_rows = [
            {"c": c, **{k: deltas[k] for k in _CLIENT_COLUMNS}}
            for c, deltas in sorted(self._client_deltas.items())
            if any(deltas[k] for k in _CLIENT_COLUMNS)
        ]
        if client_rows:
            rows.add_client_totals(self.conn, client_rows)
        fund_rows = [{"f": f, "m": m} for f, m in sorted(self._matched.items()) if m]
        if fund_rows:
            rows.add_fund_totals(self.conn, fund_rows)

    def _bump_versions(self) -> None:
        dirty = set(self._dirty_clients)
        for chunk in _chunks(sorted(self._dirty_projects)):
            query = select(client_projects.c.client_id).where(
                client_projects.c.project_id.in_(chunk)
            )
            dirty.update(self.conn.execute(query).scalars())
        record_change(self.conn, dirty)
