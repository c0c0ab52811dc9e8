"""The stored book of record: booking.LedgerBook over one write transaction.

Reads are cached for the transaction, and `prefetch` loads what a batch of events names in a
few statements; ledger rows (storage.ledger_rows) and aggregate deltas
(storage.aggregate_deltas) are collected and written in bulk by `flush`, so a batch of events
costs a few statements, not several per event.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, delete, insert, select, update

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
from clientstats.storage import book_statements as q
from clientstats.storage import reference_rows as rows
from clientstats.storage.aggregate_deltas import AggregateDeltas
from clientstats.storage.change_feed import record_change
from clientstats.storage.ledger_rows import LedgerRows
from clientstats.storage.tables import (
    client_projects,
    client_totals,
    clients,
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
from clientstats.storage.value_lists import values_param


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
        self._members: dict[tuple[str, int], bool] = {}
        self._stored_pool: dict[str, int] = {}
        self._stored_matched: dict[int, int] = {}
        self._rows = LedgerRows(conn, now=now)
        self._deltas = AggregateDeltas()

    # -- reads ---------------------------------------------------------------------------

    def prefetch(
        self,
        *,
        tokens: Iterable[str],
        references: Iterable[tuple[str, str]],
        project_ids: Iterable[int] = (),
        revoked: Iterable[str] = (),
        need_ids: Iterable[int] = (),
        memberships: Iterable[tuple[str, int]] = (),
    ) -> None:
        """Load in a few queries the donations, references, projects, needs and memberships
        a batch names.

        Locks the tokens first (`revoked`: those the batch revokes), see storage.token_locks.
        """
        wanted = sorted({t for t in tokens if t not in self._donations})
        revoked = sorted(set(revoked))
        lock_tokens(self.conn, booked=wanted, revoked=revoked)
        self._prefetch_tokens(wanted)
        self._prefetch_matching_of([t for t in revoked if t not in self._matching_of])
        by_client: dict[str, list[str]] = defaultdict(list)
        for ref in sorted({r for r in references if r not in self._references}):
            self._references[ref] = None
            by_client[ref[0]].append(ref[1])
        for client_id, refs in by_client.items():
            # Both columns, so the (client_id, client_reference) unique index serves it.
            params = {"client_id": client_id, **values_param(self.conn, refs)}
            for token, reference in self.conn.execute(q.REFERENCES(self.conn), params):
                self._references[(client_id, reference)] = token
        self._prefetch_projects(sorted({p for p in project_ids if p not in self._projects}))
        self._prefetch_needs(sorted({n for n in need_ids if n not in self._needs}))
        self._prefetch_members({m for m in memberships if m not in self._members})

    def _prefetch_needs(self, wanted: list[int]) -> None:
        if not wanted:
            return
        self._needs.update(dict.fromkeys(wanted))
        for row in self.conn.execute(q.NEEDS(self.conn), values_param(self.conn, wanted)):
            self._needs[row.id] = rows.need(row)

    def _prefetch_members(self, wanted: set[tuple[str, int]]) -> None:
        by_client: dict[str, list[int]] = defaultdict(list)
        for client_id, project_id in sorted(wanted):
            self._members[(client_id, project_id)] = False
            by_client[client_id].append(project_id)
        for client_id, project_ids in by_client.items():
            params = {"client_id": client_id, **values_param(self.conn, project_ids)}
            for project_id in self.conn.execute(q.MEMBERS(self.conn), params).scalars():
                self._members[(client_id, project_id)] = True

    def _prefetch_tokens(self, wanted: list[str]) -> None:
        if not wanted:
            return
        for t in wanted:
            self._donations[t] = None
            self._revoked[t] = False
            self._deferred[t] = None
        for row in self.conn.execute(q.DONATIONS(self.conn), values_param(self.conn, wanted)):
            self._donations[row.token] = rows.donation(row)
        # Only a booked donation can be revoked (the revocation refers to it).
        booked = [t for t in wanted if self._donations[t] is not None]
        if booked:
            revoked = self.conn.execute(q.REVOKED(self.conn), values_param(self.conn, booked))
            for (token,) in revoked:
                self._revoked[token] = True
        self._prefetch_deferred(wanted)

    def _prefetch_matching_of(self, tokens: list[str]) -> None:
        """The matching donations booked for `tokens` (a revocation revokes them too)."""
        if not tokens:
            return
        self._matching_of.update(dict.fromkeys(tokens))
        found = []
        for row in self.conn.execute(q.MATCHING_OF(self.conn), values_param(self.conn, tokens)):
            matching = rows.donation(row)
            self._matching_of[row.matched_token] = matching
            if matching.token not in self._revoked:
                self._revoked[matching.token] = False
                found.append(matching.token)
        if found:
            revoked = self.conn.execute(q.REVOKED(self.conn), values_param(self.conn, found))
            for (token,) in revoked:
                self._revoked[token] = True

    def _prefetch_deferred(self, tokens: list[str]) -> None:
        kept = self.conn.execute(q.DEFERRED(self.conn), values_param(self.conn, tokens))
        for token, created_at in kept:
            self._deferred[token] = RevocationEvent(token, created_at)

    def _prefetch_projects(self, wanted: list[int]) -> None:
        if not wanted:
            return
        for project_id in wanted:
            self._projects[project_id] = None
            self._fund_ids[project_id] = []
        params = values_param(self.conn, wanted)
        for row in self.conn.execute(q.PROJECTS(self.conn), params):
            self._projects[row.id] = rows.project(row)
        for project_id, fund_id in self.conn.execute(q.FUND_LINKS(self.conn), params):
            self._fund_ids[project_id].append(fund_id)

    def get_client(self, permalink: str) -> Client | None:
        if permalink not in self._clients:
            row = self.conn.execute(q.CLIENT_BY_ID, {"key": permalink}).first()
            self._clients[permalink] = None if row is None else rows.client(row)
        return self._clients[permalink]

    def get_project(self, project_id: int) -> Project | None:
        if project_id not in self._projects:
            row = self.conn.execute(q.PROJECT_BY_ID, {"project_id": project_id}).first()
            self._projects[project_id] = None if row is None else rows.project(row)
        return self._projects[project_id]

    def get_need(self, need_id: int) -> Need | None:
        if need_id not in self._needs:
            row = self.conn.execute(q.NEED_BY_ID, {"key": need_id}).first()
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
        key = (client_id, project_id)
        if key not in self._members:
            found = self.conn.execute(q.IS_MEMBER, {"c": client_id, "p": project_id}).first()
            self._members[key] = found is not None
        return self._members[key]

    def pool_balance(self, client_id: str) -> int:
        if client_id not in self._stored_pool:
            # Locked until commit: concurrent writers must not both spend the same balance.
            query = (
                select(client_totals.c.pool_in_cents - client_totals.c.pool_out_cents)
                .where(client_totals.c.client_id == client_id)
                .with_for_update()
            )
            self._stored_pool[client_id] = int(self.conn.execute(query).scalar() or 0)
        return self._stored_pool[client_id] + self._deltas.pool_delta(client_id)

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
        return self._stored_matched[fund_id] + self._deltas.matched[fund_id]

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
            self.conn.execute(insert(clients), values)
            self.conn.execute(insert(client_totals), {"client_id": client.permalink})
        else:
            del values["permalink"]
            self.conn.execute(q.UPDATE_CLIENT, {"key": client.permalink, **values})
        self._clients[client.permalink] = client
        self._deltas.dirty_clients.add(client.permalink)

    def save_project(self, project: Project) -> None:
        values = rows.project_values(project)
        if self.get_project(project.id) is None:
            self.conn.execute(insert(projects), values)
            self.conn.execute(insert(project_totals), {"project_id": project.id})
        else:
            del values["id"]
            self.conn.execute(q.UPDATE_PROJECT, {"key": project.id, **values})
        self._projects[project.id] = project
        self._deltas.dirty_projects.add(project.id)

    def save_need(self, need: Need) -> None:
        old = self.get_need(need.id)
        values = rows.need_values(need)
        if old is None:
            self.conn.execute(insert(needs), values)
        else:
            del values["id"]
            self.conn.execute(q.UPDATE_NEED, {"key": need.id, **values})
            self._deltas.add_requested(old.project_id, -old.requested_amount_in_cents)
        self._deltas.add_requested(need.project_id, need.requested_amount_in_cents)
        self._needs[need.id] = need

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
            self._deltas.dirty_clients.add(old.client_id)
        if fund.project_ids:
            links = [{"fund_id": fund.id, "project_id": p} for p in sorted(fund.project_ids)]
            self.conn.execute(insert(matching_fund_projects), links)
        self._funds[fund.id] = fund
        self._fund_ids.clear()
        self._deltas.dirty_clients.add(fund.client_id)

    def set_member(self, client_id: str, project_id: int, member: bool) -> None:
        if member:
            values = {"client_id": client_id, "project_id": project_id}
            self.conn.execute(insert(client_projects), values)
        else:
            self.conn.execute(q.REMOVE_MEMBER, {"c": client_id, "p": project_id})
        self._members[(client_id, project_id)] = member
        self._deltas.dirty_clients.add(client_id)

    # -- ledger writes -------------------------------------------------------------------

    def book(self, donation: Donation) -> None:
        self._rows.add_donation(donation)
        self._donations[donation.token] = donation
        self._revoked[donation.token] = False
        if donation.client_id is not None and donation.client_reference is not None:
            self._references[(donation.client_id, donation.client_reference)] = donation.token
        if donation.matched_token is not None:
            self._matching_of[donation.matched_token] = donation
        self._count(donation, sign=1)

    def revoke(self, donation: Donation, event: RevocationEvent) -> None:
        self._rows.add_revocation(donation.token, event.created_at)
        self._revoked[donation.token] = True
        self._count(donation, sign=-1)

    def defer_revocation(self, event: RevocationEvent) -> None:
        self._rows.add_deferred(event.token, event.created_at)
        self._deferred[event.token] = event

    def _count(self, donation: Donation, *, sign: int) -> None:
        fund_client = None
        if donation.channel is Channel.MATCHING and donation.matching_fund_id is not None:
            fund = self.get_matching_fund(donation.matching_fund_id)
            fund_client = None if fund is None else fund.client_id
        self._deltas.count(donation, sign=sign, fund_client=fund_client)

    # -- flush ---------------------------------------------------------------------------

    def flush(self) -> None:
        """Write the collected ledger rows, aggregate deltas and cache versions."""
        self._rows.write()
        self._deltas.write(self.conn)
        dirty, projects = self._deltas.take_dirty()
        if projects:
            params = values_param(self.conn, sorted(projects))
            dirty.update(self.conn.execute(q.CLIENTS_OF_PROJECTS(self.conn), params).scalars())
        record_change(self.conn, dirty)
        self._stored_pool.clear()
        self._stored_matched.clear()
