"""The statements of the stored book (storage.sql_book), built once.

One-row reads and writes of reference data take their key as a parameter; the batch reads
take their whole list of keys as one parameter (storage.value_lists), built once per dialect.
"""

from __future__ import annotations

from sqlalchemy import bindparam, delete, select, update

from clientstats.storage.tables import (
    client_projects,
    clients,
    deferred_revocations,
    donations,
    matching_fund_projects,
    needs,
    projects,
    revocations,
)
from clientstats.storage.value_lists import PerDialect, in_values

PROJECT_BY_ID = select(projects).where(projects.c.id == bindparam("project_id"))
CLIENT_BY_ID = select(clients).where(clients.c.permalink == bindparam("key"))
NEED_BY_ID = select(needs).where(needs.c.id == bindparam("key"))
UPDATE_CLIENT = update(clients).where(clients.c.permalink == bindparam("key"))
UPDATE_PROJECT = update(projects).where(projects.c.id == bindparam("key"))
UPDATE_NEED = update(needs).where(needs.c.id == bindparam("key"))
MEMBERSHIP = (
    client_projects.c.client_id == bindparam("c"),
    client_projects.c.project_id == bindparam("p"),
)
IS_MEMBER = select(client_projects.c.client_id).where(*MEMBERSHIP)
REMOVE_MEMBER = delete(client_projects).where(*MEMBERSHIP)
NEEDS = PerDialect(lambda d: select(needs).where(in_values(needs.c.id, d)))
MEMBERS = PerDialect(
    lambda d: select(client_projects.c.project_id).where(
        client_projects.c.client_id == bindparam("client_id"),
        in_values(client_projects.c.project_id, d),
    )
)
DONATIONS = PerDialect(lambda d: select(donations).where(in_values(donations.c.token, d)))
MATCHING_OF = PerDialect(lambda d: select(donations).where(in_values(donations.c.matched_token, d)))
REVOKED = PerDialect(lambda d: select(revocations.c.token).where(in_values(revocations.c.token, d)))
DEFERRED = PerDialect(
    lambda d: select(deferred_revocations.c.token, deferred_revocations.c.created_at).where(
        in_values(deferred_revocations.c.token, d)
    )
)
REFERENCES = PerDialect(
    lambda d: select(donations.c.token, donations.c.client_reference).where(
        donations.c.client_id == bindparam("client_id"),
        in_values(donations.c.client_reference, d),
    )
)
PROJECTS = PerDialect(lambda d: select(projects).where(in_values(projects.c.id, d)))
FUND_LINKS = PerDialect(
    lambda d: (
        select(matching_fund_projects.c.project_id, matching_fund_projects.c.fund_id)
        .where(in_values(matching_fund_projects.c.project_id, d))
        .order_by(matching_fund_projects.c.fund_id)
    )
)
CLIENTS_OF_PROJECTS = PerDialect(
    lambda d: (
        select(client_projects.c.client_id)
        .where(in_values(client_projects.c.project_id, d))
        .distinct()
    )
)
