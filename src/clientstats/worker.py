"""The request processing loop: `clientstats worker`, or a thread inside `serve`."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from clientstats.services.processing import DEFAULT_BATCH, process_batch
from clientstats.storage.database import is_retryable

log = logging.getLogger(__name__)


class Worker:
    """Books pending requests until stopped; `wake` cuts the idle wait short."""

    def __init__(
        self, engine: Engine, *, idle_seconds: float = 0.2, batch: int = DEFAULT_BATCH
    ) -> None:
        self.engine = engine
        self.idle_seconds = idle_seconds
        self.batch = batch
        self.stopping = threading.Event()
        self.woken = threading.Event()
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """A new request arrived: look at once."""
        self.woken.set()

    def run(self) -> None:
        """Process until `stop`; database faults are logged once and retried."""
        failing = False
        while not self.stopping.is_set():
            try:
                processed = process_batch(self.engine, limit=self.batch)
                if failing:
                    log.warning("worker recovered")
                failing = False
            except DBAPIError as exc:
                if is_retryable(exc):
                    # Another transaction won a row lock race and the whole batch rolled back:
                    # routine under concurrent workers and imports, so no traceback and no wait.
                    log.info(
                        "worker lost a deadlock or serialization race to another transaction;"
                        " retrying"
                    )
                    continue
                if not isinstance(exc, OperationalError | InterfaceError):
                    log.exception("worker failed on a batch; retrying")  # a refused statement
                elif not failing:
                    log.exception("worker cannot reach the database; retrying")
                failing = True
                processed = 0
            except Exception:
                # A bug must not silently stop booking: log it, back off, try again.
                log.exception("worker failed on a batch; retrying")
                failing = True
                processed = 0
            if processed == 0:
                self.woken.wait(self.idle_seconds)
                self.woken.clear()

    def start_thread(self) -> None:
        """Run in a background thread of this process."""
        self._thread = threading.Thread(target=self.run, name="clientstats-worker", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current batch."""
        self.stopping.set()
        self.woken.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
