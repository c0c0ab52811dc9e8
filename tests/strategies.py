"""Event builders and Hypothesis strategies for random ledger event streams."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

# A line of a stream: an event object, or raw text (invalid JSON, blank lines).
Line = dict[str, Any] | str

CLIENT_IDS = ("alpha", "beta", "gamma")
PROJECT_IDS = (1, 2, 3, 4)
UNKNOWN_CLIENT = "nobody"
UNKNOWN_PROJECT = 99
IMPORTABLE_CHANNELS = ("platform", "client", "external", "offline")


# --- builders of single events, used by the strategies and by worked examples in tests ----


def client_event(permalink: str, *, name: str | None = None, **fields: Any) -> dict[str, Any]:
    """A `client` event; `name` defaults to the permalink title-cased."""
    return {"event": "client", "id": permalink, "name": name or permalink.title(), **fields}


def project_event(project_id: int, **fields: Any) -> dict[str, Any]:
    """A `project` event that creates (or updates) a project with a title."""
    return {"event": "project", "id": project_id, "title": f"Project {project_id}", **fields}


def member_event(client_id: str, project_id: int, member: bool = True) -> dict[str, Any]:
    """A `client_project` event."""
    return {
        "event": "client_project",
        "client_id": client_id,
        "project_id": project_id,
        "member": member,
    }


def need_event(need_id: int, project_id: int | None, requested: int) -> dict[str, Any]:
    """A `need` event; project_id None leaves the project out (an upsert of the amount)."""
    event: dict[str, Any] = {
        "event": "need",
        "id": need_id,
        "title": f"Need {need_id}",
        "requested_amount_in_cents": requested,
    }
    if project_id is not None:
        event["project_id"] = project_id
    return event


def fund_event(
    fund_id: int,
    client_id: str,
    *,
    provided: int,
    maximum: int,
    project_ids: list[int],
    state: str = "activated",
) -> dict[str, Any]:
    """A `matching_fund` event with every field."""
    return {
        "event": "matching_fund",
        "id": fund_id,
        "client_id": client_id,
        "title": f"Fund {fund_id}",
        "provided_amount_in_cents": provided,
        "maximum_matching_amount_in_cents": maximum,
        "state": state,
        "project_ids": project_ids,
    }


def donation_event(
    token: str,
    amount: int,
    *,
    channel: str = "platform",
    project: int | None = None,
    pool: str | None = None,
    client: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A `donation` event to a project or (with `pool`) to a client's pool."""
    assert (project is None) != (pool is None)
    receiver: dict[str, Any] = (
        {"type": "project", "id": project} if pool is None else {"type": "pool", "client_id": pool}
    )
    event: dict[str, Any] = {
        "event": "donation",
        "token": token,
        "channel": channel,
        "receiver": receiver,
        "amount_in_cents": amount,
        **fields,
    }
    if client is not None:
        event["client_id"] = client
    return event


def forwarding_event(
    token: str, client_id: str, project_id: int, amount: int, **fields: Any
) -> dict[str, Any]:
    """A `forwarding` event from a client's pool to a project."""
    return {
        "event": "forwarding",
        "token": token,
        "client_id": client_id,
        "project_id": project_id,
        "amount_in_cents": amount,
        **fields,
    }


def revocation_event(token: str) -> dict[str, Any]:
    """A `revocation` event."""
    return {"event": "revocation", "token": token}


def to_lines(stream: list[Line]) -> list[bytes]:
    """The JSON Lines bytes of a stream, one element per line (without the newline)."""
    return [
        line.encode() if isinstance(line, str) else json.dumps(line).encode() for line in stream
    ]


# --- random streams -----------------------------------------------------------------------

BAD_LINES: tuple[Line, ...] = (
    "{not json",
    '{"event": "donation", "token": "x"',
    "[1, 2, 3]",
    "   ",
    "",
    {"event": "refund", "token": "t0"},
    {"event": "client", "id": "delta", "name": "Delta", "colour": "red"},
    {"event": "project", "id": -3, "title": "Negative"},
    donation_event("bad-neg", -100, project=1),
    donation_event("bad-huge", 10**12, project=1),
    {**donation_event("bad-float", 1, project=1), "amount_in_cents": 12.5},
    donation_event("bad-zero", 0, project=1),
    donation_event("bad-matching", 100, channel="matching", project=1),
    {"event": "need", "id": 1, "requested_amount_in_cents": "100"},
)

_ACTIONS = (
    ("client", 2),
    ("project", 2),
    ("membership", 3),
    ("need", 4),
    ("fund", 3),
    ("donation", 16),
    ("repeat", 3),
    ("conflict", 1),
    ("forwarding", 4),
    ("round_trip", 3),
    ("revocation", 5),
    ("bad", 1),
)
_ACTION_NAMES = tuple(name for name, weight in _ACTIONS for _ in range(weight))


class _StreamBuilder:
    """Draws events that mostly refer to what exists, sometimes to what does not."""

    def __init__(self, draw: st.DrawFn) -> None:
        self.draw = draw
        self.lines: list[Line] = []
        self.clients: dict[str, bool] = {}  # permalink -> has pool, as the stream last said
        self.projects: set[int] = set()
        self.needs: dict[int, int] = {}
        self.funds: set[int] = set()
        self.matched_projects: set[int] = set()
        self.money_lines: list[dict[str, Any]] = []  # donation and forwarding events
        self.revocations: list[dict[str, Any]] = []
        self.references: list[str] = []
        self.tokens = 0

    def pick(self, values: Any) -> Any:
        return self.draw(st.sampled_from(sorted(values)))

    def chance(self, percent: int) -> bool:
        return self.draw(st.integers(1, 100)) <= percent

    def amount(self, high: int = 5_000) -> int:
        return self.draw(st.integers(1, high))

    def token(self) -> str:
        self.tokens += 1
        return f"t{self.tokens}"

    def some_client(self) -> str:
        if not self.clients or self.chance(5):
            return UNKNOWN_CLIENT
        permalink = self.pick(self.clients)
        # Permalinks are matched case-insensitively; references may be written in capitals.
        return str(permalink).upper() if self.chance(10) else str(permalink)

    def some_project(self) -> int:
        if not self.projects or self.chance(5):
            return UNKNOWN_PROJECT
        return int(self.pick(self.projects))

    # -- the actions ------------------------------------------------------------------------

    def client(self) -> None:
        permalink = self.pick(CLIENT_IDS)
        pool = self.draw(st.booleans())
        if permalink in self.clients and self.chance(30):
            event: dict[str, Any] = {"event": "client", "id": permalink, "pool": pool}
        else:
            event = client_event(permalink, pool=pool)
        self.clients[permalink] = pool
        self.lines.append(event)

    def project(self) -> None:
        project_id = self.pick(PROJECT_IDS)
        closed = self.chance(25)
        prohibited = self.chance(15)
        if project_id in self.projects:
            event = {"event": "project", "id": project_id, "closed": closed}
            if self.chance(50):
                event["donations_prohibited"] = prohibited
        else:
            event = project_event(project_id, closed=closed, donations_prohibited=prohibited)
        self.projects.add(project_id)
        self.lines.append(event)

    def membership(self) -> None:
        member = self.chance(80)
        self.lines.append(member_event(self.some_client(), self.some_project(), member))

    def need(self) -> None:
        if self.needs and self.chance(30):
            need_id = self.pick(self.needs)
            self.lines.append(need_event(need_id, None, self.amount(8_000)))
            return
        need_id = self.draw(st.integers(1, 12))
        project_id = self.some_project()
        self.needs.setdefault(need_id, project_id)
        self.lines.append(need_event(need_id, project_id, self.amount(8_000)))

    def fund(self, new_id: int | None = None) -> None:
        fund_id = new_id or self.draw(st.integers(1, 3))
        if new_id is None and fund_id in self.funds and self.chance(40):
            state = self.pick(("activated", "closed"))
            self.lines.append({"event": "matching_fund", "id": fund_id, "state": state})
            return
        self.funds.add(fund_id)
        candidates = sorted(self.projects) or [UNKNOWN_PROJECT]
        project_ids = self.draw(
            st.lists(st.sampled_from(candidates), min_size=0 if new_id is None else 1, max_size=3)
        )
        if self.matched_projects and self.chance(50):  # several funds on one project
            project_ids.append(self.pick(self.matched_projects))
        self.matched_projects.update(project_ids)
        self.lines.append(
            fund_event(
                fund_id,
                self.some_client(),
                provided=self.draw(st.integers(0, 3_000)),
                maximum=self.amount(1_500),
                project_ids=project_ids,
                state="closed" if self.chance(15) else "activated",
            )
        )

    def donation(self) -> None:
        channel = self.draw(st.sampled_from(IMPORTABLE_CHANNELS))
        to_pool = channel == "offline" or (channel == "client" and self.chance(25))
        if self.chance(5):
            to_pool = not to_pool  # offline money to a project, platform money to a pool
        fields: dict[str, Any] = {}
        client = self.some_client() if channel == "client" or self.chance(3) else None
        if to_pool:
            pool = client if client is not None and self.chance(85) else self.some_client()
            target: dict[str, Any] = {"pool": pool}
        elif self.matched_projects and self.chance(40):
            target = {"project": self.pick(self.matched_projects)}
        else:
            target = {"project": self.some_project()}
        if client is not None and self.chance(60):
            fields["client_reference"] = self.reference()
        if self.chance(20):
            fields["created_at"] = f"2024-0{self.draw(st.integers(1, 9))}-15T10:00:00+02:00"
        if self.chance(10):
            fields["tracking_via"] = "newsletter"
        event = donation_event(
            self.token(), self.amount(), channel=channel, client=client, **target, **fields
        )
        self.money_lines.append(event)
        self.lines.append(event)

    def reference(self) -> str:
        if self.references and self.chance(10):  # reused: rejected for the same client
            return str(self.pick(self.references))
        reference = f"ref-{len(self.references)}"
        self.references.append(reference)
        return reference

    def forwarding(self) -> None:
        fields = {"client_reference": self.reference()} if self.chance(30) else {}
        with_pool = [c for c, pool in self.clients.items() if pool]
        client = self.pick(with_pool) if with_pool and self.chance(70) else self.some_client()
        event = forwarding_event(
            self.token(),
            client,
            self.some_project(),
            self.amount(self.pick((500, 4_000))),
            **fields,
        )
        self.money_lines.append(event)
        self.lines.append(event)

    def round_trip(self) -> None:
        """Money into a pool and straight out again: the forwarding depends on the line before."""
        with_pool = [c for c, pool in self.clients.items() if pool]
        if not with_pool:
            return
        client = self.pick(with_pool)
        amount = self.amount()
        donation = donation_event(self.token(), amount, channel="offline", pool=client)
        forwarding = forwarding_event(
            self.token(), client, self.some_project(), self.draw(st.integers(1, 2 * amount))
        )
        self.money_lines.extend((donation, forwarding))
        self.lines.extend((donation, forwarding))

    def repeat(self) -> None:
        if self.money_lines:
            self.lines.append(dict(self.pick_line(self.money_lines)))
        elif self.revocations:
            self.lines.append(dict(self.pick_line(self.revocations)))

    def conflict(self) -> None:
        if self.money_lines:
            original = self.pick_line(self.money_lines)
            self.lines.append({**original, "amount_in_cents": original["amount_in_cents"] + 1})

    def pick_line(self, lines: list[dict[str, Any]]) -> dict[str, Any]:
        return lines[self.draw(st.integers(0, len(lines) - 1))]

    def revocation(self) -> None:
        roll = self.draw(st.integers(1, 100))
        if self.revocations and roll <= 15:  # revoked twice (maybe both before the donation)
            event = dict(self.pick_line(self.revocations))
        elif roll <= 40:  # out of order: one of the next tokens, booked later or never
            event = revocation_event(f"t{self.tokens + self.draw(st.integers(1, 4))}")
        elif self.money_lines and roll <= 92:
            event = revocation_event(self.pick_line(self.money_lines)["token"])
        else:
            event = revocation_event("never-booked")
        self.revocations.append(event)
        self.lines.append(event)

    def bad(self) -> None:
        self.lines.append(self.draw(st.sampled_from(BAD_LINES)))

    def prologue(self) -> None:
        """Some reference data first, so that most later lines can be booked."""
        for _ in range(self.draw(st.integers(1, 3))):
            self.client()
        for _ in range(self.draw(st.integers(1, 3))):
            self.project()
        for _ in range(self.draw(st.integers(0, 4))):
            self.membership()
        for _ in range(self.draw(st.integers(0, 3))):
            self.need()
        for fund_id in range(1, self.draw(st.integers(1, 3)) + 1):
            self.fund(fund_id)


@st.composite
def event_streams(draw: st.DrawFn, *, max_actions: int = 40) -> list[Line]:
    """A random stream of ledger event lines that exercises every booking rule.

    Expect rejections among them: unknown references, closed projects, pools of clients
    without a pool, conflicting repeats, reused client references and malformed lines.
    Revocations come in order and out of order: before their donation or forwarding, for
    tokens never booked, and twice.
    """
    builder = _StreamBuilder(draw)
    builder.prologue()
    for _ in range(draw(st.integers(min(5, max_actions), max_actions))):
        getattr(builder, draw(st.sampled_from(_ACTION_NAMES)))()
    return builder.lines
