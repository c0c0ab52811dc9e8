"""The stored book of record: booking.LedgerBook over one write transaction.

Reads are cached for the transaction, and `prefetch` loads what a batch of events names in a
few statements (storage.book_reads); ledger rows (storage.ledger_rows) and aggregate deltas
(storage.aggregate_deltas) are collected and written in bulk by `flush`, so a batch of events
costs a few statements, not several per event.
"""

from __future__ import annotations

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
from clientstats.storage.book_reads import BookReads
from clientstats.storage.change_feed import record_change
from clientstats.storage.ledger_rows import LedgerRows
from clientstats.storage.tables import (
    client_projects,
    client_totals,
    clients,
    matching_fund_projects,
    matching_fund_totals,
    matching_funds,
    needs,
    project_totals,
    projects,
)
from clientstats.storage.value_lists import values_param


class SqlBook(BookReads):
    """booking.LedgerBook inside one write transaction; call `flush` before commit."""

    def __init__(self, conn: Connection, *, now: datetime) -> None:
        super().__init__(conn)
        self.now = now
        self._stored_pool: dict[str, int] = {}
        self._stored_matched: dict[int, int] = {}
        self._rows = LedgerRows(conn, now=now)
        self._deltas = AggregateDeltas()

    # -- reads that spend budgets ----------------------------------------------------------

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
        return self._stored_matched[fund_id] + self._deltas.matched_delta(fund_id)

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
        if donation.matching_fund_id is not None and donation.channel is Channel.MATCHING:
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
