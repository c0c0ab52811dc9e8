"""The ASGI application: the statistics and list fast paths in front of the Starlette routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

import orjson
from anyio import to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from clientstats.api import admin, client_api, health, metrics_endpoint, widget
from clientstats.api.errors import EXCEPTION_HANDLERS, JSON
from clientstats.api.lists import endpoint as lists
from clientstats.api.lists.cache import PageCache
from clientstats.api.lists.fast_path import ListFastPath
from clientstats.api.openapi import openapi_document
from clientstats.api.route_labels import describer
from clientstats.api.statistics_endpoint import Answer, ASGIApp, Scope, StatisticsEndpoint
from clientstats.api.stop_signals import on_stop_signal
from clientstats.api.stream import StreamEndpoint, make_room_for
from clientstats.api.stream_hub import StreamHub
from clientstats.cache.memory import InProcessCache
from clientstats.cache.redis_cache import RedisCache
from clientstats.config import Settings
from clientstats.observability.access_log import AccessLog
from clientstats.observability.http_tallies import HttpTallies
from clientstats.observability.metrics import Metrics, Observed
from clientstats.observability.middleware import Observability
from clientstats.services.credentials import Authenticator
from clientstats.services.live_statistics import LiveStatistics
from clientstats.storage.database import make_engine
from clientstats.storage.schema import ensure_schema
from clientstats.worker import Worker

_OPENAPI = orjson.dumps(openapi_document())


async def openapi(request: Request) -> Response:
    """The OpenAPI document."""
    return Response(_OPENAPI, media_type=JSON)


def create_app(settings: Settings) -> ASGIApp:
    """Build the service for the given settings; the database is opened at startup."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = make_engine(
            settings.database_url,
            pool_size=settings.database_pool_size,
            timeout=settings.database_timeout,
        )
        await to_thread.run_sync(ensure_schema, engine)
        shared = (
            RedisCache(settings.redis_url, timeout=settings.redis_timeout)
            if settings.redis_url
            else None
        )
        app.state.shared_cache = shared
        live = LiveStatistics(
            engine,
            InProcessCache(),
            ttl=settings.cache_ttl,
            poll_interval=settings.freshness_poll_interval,
            shared=shared,
            timeout=settings.database_timeout,
        )
        await to_thread.run_sync(live.refresh_versions)
        app.state.engine, app.state.live = engine, live
        app.state.page_cache = PageCache()
        hub = StreamHub(
            live,
            max_subscribers=settings.stream_max_subscribers,
            heartbeat=settings.stream_heartbeat_interval,
        )
        app.state.stream_hub = hub
        make_room_for(settings.stream_max_subscribers)
        app.state.authenticator = Authenticator(engine)
        worker = Worker(engine) if settings.worker_in_process else None
        app.state.wake_worker = worker.wake if worker is not None else lambda: None
        if worker is not None:
            worker.start_thread()
        poller = asyncio.create_task(live.poll_forever())
        metrics: Metrics | None = app.state.metrics
        flusher = asyncio.create_task(metrics.flush_forever()) if metrics else None
        # Everything built so far lives as long as the process: keep it out of every GC pass.
        gc.collect()
        gc.freeze()
        try:
            # Open streams end when the server is told to stop, or it would wait for them.
            with on_stop_signal(hub.close):
                yield
        finally:
            hub.close()
            for task in (poller, flusher):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if worker is not None:
                await to_thread.run_sync(worker.stop)
            if metrics is not None:
                metrics.flush()  # the last counts of this process stay in the sums
            if app.state.access_log is not None:
                app.state.access_log.flush()
            engine.dispose()

    routes = [
        Route("/admin/events", admin.post_events, methods=["POST"]),
        Route("/health/live", health.live, methods=["GET"]),
        Route("/health/ready", health.ready, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/metrics", metrics_endpoint.get_metrics, methods=["GET"]),
        *client_api.ROUTES,
        *lists.ROUTES,
        *widget.ROUTES,
    ]
    app = Starlette(
        debug=False,
        routes=routes,
        exception_handlers=EXCEPTION_HANDLERS,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.debug = settings.debug
    list_pages = app.state.list_fast_path = ListFastPath(lambda: app.state.live, settings)
    statistics = StatisticsEndpoint(
        StreamEndpoint(app, app.state),
        lambda: app.state.live,
        lambda: app.state.authenticator,
        http_max_age=settings.http_max_age,
    )
    tallies = HttpTallies() if settings.metrics else None

    def observe() -> Observed:
        live: LiveStatistics = app.state.live
        return Observed(
            cache_hits={
                ("process",): statistics.process_hits,
                ("redis",): live.redis_hits,
                ("database",): live.database_loads,
            },
            cache_misses={("process",): statistics.process_misses, ("redis",): live.redis_misses},
            feed_age=live.feed_age(),
            list_hits=list_pages.hits,
        )

    app.state.metrics = Metrics(tallies, observe) if tallies is not None else None
    app.state.access_log = AccessLog() if settings.access_log else None

    def answer(scope: Scope) -> Answer | None:
        """A cached response of either fast path; their paths do not overlap."""
        return statistics.answer(scope) or list_pages.answer(scope)

    return Observability(
        statistics,
        describer(routes),
        tallies=tallies,
        access_log=app.state.access_log,
        answer=answer,
        prepared=statistics.prepared,
    )
