"""The application factory that `serve --workers N` hands to uvicorn in each process."""

from __future__ import annotations

from clientstats.api.app import create_app
from clientstats.api.statistics_endpoint import ASGIApp
from clientstats.config import settings


def app_from_environment() -> ASGIApp:
    """Build the app from CLIENTSTATS_* settings (uvicorn's `factory=True` entry point)."""
    return create_app(settings())
