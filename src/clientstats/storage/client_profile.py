"""What a public page shows of a client besides its figures: its name and visibility."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, String, bindparam, select

from clientstats.storage.tables import client_totals, clients


@dataclass(frozen=True, slots=True)
class ClientProfile:
    """A client's name and visibility, with the version token they were read at."""

    permalink: str
    name: str
    statistics_private: bool
    version: int


_PROFILE = (
    select(clients.c.name, clients.c.statistics_private, client_totals.c.version)
    .join(client_totals, client_totals.c.client_id == clients.c.permalink)
    .where(clients.c.permalink == bindparam("permalink", type_=String()))
)


def client_profile(conn: Connection, permalink: str) -> ClientProfile | None:
    """The profile of a client by its (lower-case) permalink; None for an unknown client."""
    row = conn.execute(_PROFILE, {"permalink": permalink}).first()
    if row is None:
        return None
    return ClientProfile(permalink, str(row.name), bool(row.statistics_private), int(row.version))
