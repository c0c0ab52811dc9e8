"""Reading the profile of a client whose figures anyone may see (the embeddable widget)."""

from __future__ import annotations

from sqlalchemy import Engine

from clientstats.errors import NotFound
from clientstats.services.statistics import normalize_permalink
from clientstats.storage.client_profile import ClientProfile, client_profile
from clientstats.storage.database import read_transaction


def get_public_profile_or_raise(engine: Engine, permalink: str) -> ClientProfile:
    """A public client's profile; NotFound for an unknown client and for a private one.

    A private client's figures need its credentials, which a public page cannot hold, so
    such a page does not exist for it, as for a client that does not exist.
    """
    permalink = normalize_permalink(permalink)
    with read_transaction(engine) as conn:
        profile = client_profile(conn, permalink)
    if profile is None or profile.statistics_private:
        raise NotFound(f"Couldn't find Client with permalink={permalink}")
    return profile
