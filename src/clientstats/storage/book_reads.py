"""Reads of the stored book for one write transaction, cached, and loaded per batch.

`prefetch` loads in a few statements what a batch of events names: its tokens (with their
revocations, kept revocations and, for the tokens it revokes, their matching donations),
client references, projects with their matching-fund links, needs and memberships. The
one-row reads behind the cache serve what a batch did not name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from sqlalchemy import Connection, select

from clientstats.domain.events import RevocationEvent
from clientstats.domain.ledger import Client, Donation, MatchingFund, Need, Project
from clientstats.storage import book_statements as q
from clientstats.storage import reference_rows as rows
from clientstats.storage.tables import donations, revocations
from clientstats.storage.token_locks import lock_tokens
from clientstats.storage.value_lists import values_param


class BookReads:
    """The reads of storage.sql_book.SqlBook, cached for its transaction."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
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

    def matching_donation_of(self, token: str) -> Donation | None:
        if token not in self._matching_of:
            row = self.conn.execute(
                select(donations).where(donations.c.matched_token == token)
            ).first()
            self._matching_of[token] = None if row is None else rows.donation(row)
        return self._matching_of[token]
