"""The change feed: commit-ordered changes, random tokens, and readers that notice a restore."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, select, text, update

from clientstats.services.changes import ChangeReader
from clientstats.services.importing import import_lines
from clientstats.storage import change_feed, requests_store
from clientstats.storage.database import read_transaction, write_transaction
from clientstats.storage.tables import change_log, client_totals
from tests.strategies import (
    Line,
    client_event,
    donation_event,
    member_event,
    need_event,
    project_event,
    to_lines,
)

SETUP: list[Line] = [
    client_event("vf", pool=True),
    client_event("acme"),
    client_event("other"),
    project_event(1),
    project_event(2),
    member_event("vf", 1),
    member_event("acme", 1),
    member_event("other", 2),
    need_event(10, 1, 10_000),
    need_event(20, 2, 10_000),
]


def run(engine: Engine, stream: list[Line]) -> None:
    report = import_lines(engine, to_lines(stream))
    assert report.ok, report.rejected


def versions(engine: Engine) -> dict[str, change_feed.ClientVersion]:
    with read_transaction(engine) as conn:
        return change_feed.all_versions(conn)


def test_a_booking_gives_every_affected_client_one_new_token_and_leaves_others(
    engine: Engine,
) -> None:
    run(engine, SETUP)
    before = versions(engine)
    run(engine, [donation_event("d1", 500, project=1)])
    after = versions(engine)
    assert after["other"] == before["other"]
    assert after["vf"].version != before["vf"].version
    # One transaction, one change: both clients of project 1 carry its token and number.
    assert after["vf"] == after["acme"]
    assert after["vf"].changed_seq > max(v.changed_seq for v in before.values())


def test_the_reader_reads_everything_first_then_only_what_changed(engine: Engine) -> None:
    run(engine, SETUP)
    reader = ChangeReader(engine)
    first = reader.read()
    assert first.everything and set(first.versions) == {"vf", "acme", "other"}
    nothing = reader.read()
    assert (nothing.everything, nothing.versions) == (False, {})
    run(engine, [donation_event("d1", 500, project=2)])
    changed = reader.read()
    assert changed.everything is False
    assert changed.versions == {"other": versions(engine)["other"]}
    assert reader.read().versions == {}


def test_a_rejected_line_changes_no_version(engine: Engine) -> None:
    run(engine, SETUP)
    reader = ChangeReader(engine)
    reader.read()
    report = import_lines(engine, to_lines([donation_event("bad", 5, project=99)]))
    assert len(report.rejected) == 1
    assert reader.read().versions == {}


def _rows(engine: Engine) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], object]:
    with read_transaction(engine) as conn:
        totals = [tuple(r) for r in conn.execute(select(client_totals))]
        log = [tuple(r) for r in conn.execute(select(change_log))]
        head = change_feed.head(conn)
    return totals, log, head


def _restore(
    engine: Engine, saved: tuple[list[tuple[object, ...]], list[tuple[object, ...]], object]
) -> None:
    """Put the version bookkeeping back as it was: what a restore from a backup does to it."""
    totals, log, head = saved
    assert isinstance(head, change_feed.Position)
    with write_transaction(engine) as conn:
        conn.execute(text("DELETE FROM change_log"))
        for row in log:
            conn.execute(change_log.insert().values(seq=row[0], stamp=row[1]))
        for row in totals:
            values = dict(zip(client_totals.c.keys(), row, strict=True))
            conn.execute(
                update(client_totals)
                .where(client_totals.c.client_id == values["client_id"])
                .values(values)
            )
        conn.execute(text(f"UPDATE change_feed SET seq = {head.seq}, stamp = {head.stamp}"))


def test_tokens_do_not_repeat_after_a_restore_and_the_reader_starts_over(
    engine: Engine,
) -> None:
    run(engine, SETUP)
    backup = _rows(engine)
    run(engine, [donation_event("d1", 500, project=1)])
    reader = ChangeReader(engine)
    reader.read()
    lost = versions(engine)["vf"]
    _restore(engine, backup)
    run(engine, [donation_event("d2", 700, project=1)])
    now = versions(engine)["vf"]
    # The same sequence number as the change the restore removed, but never its token.
    assert now.changed_seq == lost.changed_seq
    assert now.version != lost.version
    changes = reader.read()
    assert changes.everything is True
    assert changes.versions["vf"] == now


def test_a_reader_further_behind_than_the_kept_log_reads_everything(engine: Engine) -> None:
    run(engine, SETUP)
    reader = ChangeReader(engine)
    reader.read()
    run(engine, [donation_event("d1", 500, project=1)])
    with write_transaction(engine) as conn:
        conn.execute(text("DELETE FROM change_log"))  # as pruning does to old positions
    run(engine, [donation_event("d2", 500, project=2)])
    assert reader.read().everything is True


def test_concurrent_writers_never_let_a_reader_skip_a_change(engine: Engine) -> None:
    """Sequence order is commit order: polling while writers race misses no client."""
    clients = [f"c{i}" for i in range(8)]
    setup: list[Line] = []
    for i, client in enumerate(clients):
        setup += [client_event(client), project_event(100 + i), member_event(client, 100 + i)]
    run(engine, setup)
    reader = ChangeReader(engine)
    known = dict(reader.read().versions)
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            known.update(reader.read().versions)

    poller = threading.Thread(target=poll)
    poller.start()

    def write(i: int) -> None:
        for n in range(15):
            run(engine, [donation_event(f"t{i}-{n}", 100, project=100 + i)])

    writers = [threading.Thread(target=write, args=(i,)) for i in range(len(clients))]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    stop.set()
    poller.join()
    known.update(reader.read().versions)
    assert known == versions(engine)


def test_new_credentials_give_only_their_client_a_new_token(engine: Engine) -> None:
    run(engine, SETUP)
    before = versions(engine)
    with write_transaction(engine) as conn:
        assert requests_store.set_credentials(
            conn, client_id="acme", username="acme", password_hash="$argon2id$stand-in"
        )
        assert not requests_store.set_credentials(
            conn, client_id="nobody", username="nobody", password_hash="$argon2id$stand-in"
        )
    after = versions(engine)
    assert after["acme"].version != before["acme"].version
    assert after["acme"].changed_seq > max(v.changed_seq for v in before.values())
    assert after["vf"] == before["vf"] and after["other"] == before["other"]
