"""The quick path of money events and the fast line decoder accept and build what the
field reader and the strict decoder do, and leave everything else to them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clientstats.domain.events import DonationEvent, EventInvalid, parse_event, parse_line
from clientstats.domain.ledger import Channel, Donation
from clientstats.domain.quick_events import quick_event
from clientstats.services.event_lines import decode_event

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

DONATION: dict[str, Any] = {
    "event": "donation",
    "token": "d-1",
    "channel": "client",
    "client_id": "VolksFreund",
    "client_reference": "vf-1",
    "receiver": {"type": "project", "id": 7},
    "amount_in_cents": 2500,
    "tracking_via": "newsletter",
    "created_at": "2025-01-01T10:00:00+01:00",
}
FORWARDING: dict[str, Any] = {
    "event": "forwarding",
    "token": "f-1",
    "client_id": "kiezbank",
    "project_id": 9,
    "amount_in_cents": 10_000,
    "client_reference": "kb-9",
    "created_at": "2025-01-01T10:00:00Z",
}
REVOCATION: dict[str, Any] = {"event": "revocation", "token": "d-1"}

# Values that are valid somewhere, invalid elsewhere, or of the wrong type.
ODD_VALUES = st.sampled_from(
    [
        None, True, 0, -1, 1, 2**63, 100_000_000_001, 1.5, "", " ", "x", "d-2", "a b",
        "platform", "client", "external", "offline", "matching", "forwarding", "pool",
        "project", "2025-01-01T10:00:00", "2025-01-01T10:00:00+01:00", "not a date",
        "tab\there", "\u0085", [], [1], {}, {"type": "pool", "client_id": "vf"},
        {"type": "project", "id": 3}, {"type": "project", "id": 3, "x": 1},
        {"type": "project"}, {"type": "pool", "id": 3},
    ]
)  # fmt: skip
KEYS = st.sampled_from(
    [
        "token", "channel", "client_id", "client_reference", "receiver", "amount_in_cents",
        "tracking_via", "created_at", "project_id", "unknown",
    ]
)  # fmt: skip


def reader_result(obj: dict[str, Any]) -> object:
    """What the field reader alone makes of an object: its event, or its error text."""
    try:
        return parse_event(obj, now=NOW, quick=False)
    except EventInvalid as invalid:
        return f"invalid: {invalid}"


def test_a_client_donation_is_built_as_the_reader_builds_it() -> None:
    event = quick_event("donation", DONATION, NOW)
    assert event == DonationEvent(
        Donation(
            token="d-1",
            channel=Channel.CLIENT,
            amount_in_cents=2500,
            created_at=datetime(2025, 1, 1, 9, 0, tzinfo=UTC),
            project_id=7,
            client_id="volksfreund",
            client_reference="vf-1",
            tracking_via="newsletter",
        ),
        created_at_given=True,
    )
    assert event == reader_result(DONATION)


@pytest.mark.parametrize("base", [DONATION, FORWARDING, REVOCATION])
@settings(max_examples=300, deadline=None)
@given(changes=st.dictionaries(KEYS, ODD_VALUES, max_size=3), dropped=st.sets(KEYS, max_size=2))
def test_the_quick_path_agrees_with_the_reader_or_leaves_the_object_to_it(
    base: dict[str, Any], changes: dict[str, Any], dropped: set[str]
) -> None:
    obj = {k: v for k, v in {**base, **changes}.items() if k not in dropped}
    quick = quick_event(obj["event"], obj, NOW)
    expected = reader_result(obj)
    if quick is not None:
        assert quick == expected
    assert reader_result(obj) == expected  # the reader still decides when quick gives up


def test_an_invalid_money_event_is_left_to_the_reader_which_names_every_field() -> None:
    obj = {**DONATION, "amount_in_cents": 0, "channel": "matching", "extra": 1}
    assert quick_event("donation", obj, NOW) is None
    with pytest.raises(EventInvalid) as caught:
        parse_event(obj, now=NOW)
    assert set(caught.value.errors) == {"amount_in_cents", "channel", "extra"}


@pytest.mark.parametrize(
    "line",
    [
        orjson.dumps(DONATION) + b"\n",
        orjson.dumps(FORWARDING),
        b'{"event": "revocation", "token": "d-1"}\n',  # spaces: the strict decoder reads it
        b'{"event":"revocation","token":"d-1","token":"d-2"}\n',
        b'{"event":"donation","token":"d-1","amount_in_cents":1e2}',
        b'{"event":"donation","amount_in_cents":123456789012345678901234567890}',
        b'{"event":"revocation","token":"\\ud800"}',
        b'{"event":"revocation","token":NaN}',
        b"\xef\xbb\xbf" + orjson.dumps(REVOCATION),
        b'["event"]',
        b"{not json",
        b"\xff\xfe",
    ],
)
def test_the_fast_decoder_gives_what_the_strict_one_gives(line: bytes) -> None:
    def outcome(decode: Any) -> object:
        try:
            return decode(line, now=NOW)
        except EventInvalid as invalid:
            return f"invalid: {invalid}"

    assert outcome(decode_event) == outcome(parse_line)


def test_a_duplicate_key_is_refused_also_on_the_fast_decoder() -> None:
    with pytest.raises(EventInvalid, match="duplicate key 'token'"):
        decode_event(b'{"event":"revocation","token":"d-1","token":"d-2"}', now=NOW)
