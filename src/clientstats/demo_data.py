"""A deterministic generator of a realistic demo data set as ledger events."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import accumulate, chain
from typing import NamedTuple

Event = dict[str, object]

# permalink, name, has a pool, client_reference prefix, share of the client donations
_CLIENTS: tuple[tuple[str, str, bool, str, int], ...] = (
    ("volksfreund", "Trierischer Volksfreund", True, "vf", 35),
    ("acme", "ACME Corporation", False, "acme", 15),
    ("stadtwerke-nord", "Stadtwerke Nord", True, "swn", 20),
    ("tageblatt", "Tageblatt Online", False, "tb", 15),
    ("kiezbank", "Kiezbank eG", True, "kb", 15),
)
DEMO_CLIENTS: tuple[str, ...] = tuple(client[0] for client in _CLIENTS)

# owning client and title of the matching funds 1, 2, ...; the last one is closed
_FUNDS = (
    ("volksfreund", "Volksfreund verdoppelt"), ("acme", "ACME doubles your donation"),
    ("stadtwerke-nord", "Stadtwerke Nord Energiefonds"), ("kiezbank", "Kiezbank Weihnachtsfonds"),
)  # fmt: skip

_DE_THINGS = (
    "Schulgarten", "Spielplatz", "Lesepaten", "Musikinstrumente", "Sportausrüstung",
    "Mittagessen", "Hausaufgabenhilfe", "Ferienfreizeit", "Computerraum", "Kletterwand",
)  # fmt: skip
_DE_WHOM = (
    "Kita Sonnenschein", "Grundschule am Park", "Jugendzentrum Nord", "die Tafel Trier",
    "Seniorenheim Lindenhof", "Tierheim Pfotenglück", "Flüchtlingshilfe Mitte",
    "Förderschule Regenbogen", "Kinderhospiz Lichtblick", "Sportverein Eintracht",
)  # fmt: skip
_EN_THINGS = (
    "Clean water for", "School books for", "Solar lamps for", "Medical care for",
    "Warm meals for", "A playground for", "Scholarships for", "Mosquito nets for",
)  # fmt: skip
_EN_WHOM = (
    "Kibera", "rural Malawi", "street children in Kabul", "refugees on Lesbos",
    "northern Uganda", "girls in Nepal", "families in Haiti", "villages in Sierra Leone",
)  # fmt: skip
_NEED_TITLES = (
    "Material", "Honorare", "Miete", "Transport", "Verpflegung", "Ausstattung",
    "Equipment", "Staff", "Training", "Building materials", "Ramp", "Tools",
)  # fmt: skip
_TRACKING = ("newsletter", "facebook", "instagram", "homepage-teaser", "print-ad")
_GIFTS = (500, 1000, 1500, 2000, 2500, 3000, 5000, 7500, 10_000)
_GIFT_WEIGHTS = (6, 14, 5, 12, 12, 6, 14, 4, 8)
_MANTISSAS = (10, 12, 15, 20, 25, 30, 40, 50, 60, 75)
_CHANNELS = ("platform", "client", "external", "offline")
_CHANNEL_WEIGHTS = (58, 27, 10, 5)

_PUBLIC = {"statistics_private": False}
_START = datetime(2024, 12, 31, 23, tzinfo=UTC)  # 2025-01-01T00:00:00+01:00
_END = datetime(2026, 10, 31, 23, tzinfo=UTC)  # 2026-11-01T00:00:00+01:00
_REVOCATION_WINDOW = timedelta(days=14)


class _Booked(NamedTuple):
    """A booked donation that a donor may still revoke."""

    token: str
    at: datetime
    pool: str | None
    amount: int


def generate_demo_events(*, seed: int = 2015, scale: int = 1) -> Iterator[dict[str, object]]:
    """Yield the ledger events of a realistic demo data set (`clientstats demo`)."""
    if scale < 1:
        raise ValueError("scale must be at least 1")
    demo = _Demo(random.Random(seed), scale)
    return chain(demo.reference_events(), demo.timeline_events())


def _round_amount(rng: random.Random, low: int, high: int) -> int:
    """A round-ish amount in cents between low and high, roughly log-uniform."""
    candidates: list[int] = [
        m * 10**e for e in range(1, 9) for m in _MANTISSAS if low <= m * 10**e <= high
    ]
    return rng.choice(candidates)


def _gift_amount(rng: random.Random) -> int:
    """What a single donor typically gives, now and then a large gift."""
    roll = rng.random()
    if roll < 0.06:
        return _round_amount(rng, 50_000, 500_000)
    if roll < 0.16:
        return rng.randint(5, 100) * 100
    return rng.choices(_GIFTS, _GIFT_WEIGHTS)[0]


def _last_sunday(year: int, month: int) -> datetime:
    """01:00 UTC on the last Sunday of a 31-day month, when Central European DST switches."""
    day = datetime(year, month, 31, 1, tzinfo=UTC)
    return day - timedelta(days=(day.weekday() - 6) % 7)


def _iso(at: datetime) -> str:
    """The moment as ISO 8601 in German local time with its offset."""
    summer = _last_sunday(at.year, 3) <= at < _last_sunday(at.year, 10)
    local = at.astimezone(timezone(timedelta(hours=2 if summer else 1)))
    return local.isoformat(timespec="seconds")


def _project_title(rng: random.Random) -> str:
    """A project title built from word lists, German or English."""
    if rng.random() < 0.65:
        return f"{rng.choice(_DE_THINGS)} für {rng.choice(_DE_WHOM)}"
    return f"{rng.choice(_EN_THINGS)} {rng.choice(_EN_WHOM)}"


class _Demo:
    """The state of one generation run: what exists, accepts money, and what pools hold."""

    def __init__(self, rng: random.Random, scale: int) -> None:
        self.rng = rng
        self.scale = scale
        self.project_ids = list(range(1000, 1000 + 300 * scale))
        self.accepting: list[int] = []  # a list to draw from, a set to look up
        self.accepts: set[int] = set()
        self.requested: dict[int, int] = dict.fromkeys(self.project_ids, 0)
        self.cumulative: list[int] = []  # of the requested amounts of `accepting`, built lazily
        self.hot: list[int] = []  # accepting projects that get over-funded
        self.members: dict[str, list[int]] = {}
        self.pools: dict[str, int] = {c[0]: 0 for c in _CLIENTS if c[2]}
        self.booked: list[_Booked] = []
        self.revoked: set[str] = set()
        self.references: dict[str, int] = dict.fromkeys(DEMO_CLIENTS, 0)
        self.next_need_id = 50_000
        self.late_needs = 0
        self.donations = 0
        self.forwardings = 0

    def reference_events(self) -> Iterator[Event]:
        """Clients, projects, needs, client projects and matching funds, in that order."""
        for permalink, name, pool, _, _ in _CLIENTS:
            yield {"event": "client", "id": permalink, "name": name, "pool": pool} | _PUBLIC
            self.members[permalink] = []
        yield from self._project_events()
        for project_id in self.project_ids:
            for _ in range(1 if project_id in self.hot else self.rng.randint(1, 5)):
                yield self._need(project_id, small=project_id in self.hot)
        yield from self._membership_events()
        yield from self._fund_events()

    def _project_events(self) -> Iterator[Event]:
        """The projects, 5% closed and 2% prohibited from receiving donations."""
        count = len(self.project_ids)
        drawn = self.rng.sample(self.project_ids, count * 7 // 100)
        refusing, closed = set(drawn), set(drawn[: count * 5 // 100])
        self.accepting = [p for p in self.project_ids if p not in refusing]
        self.accepts = set(self.accepting)
        self.hot = sorted(self.rng.sample(self.accepting, 4 * self.scale))
        for project_id in self.project_ids:
            yield {
                "event": "project",
                "id": project_id,
                "title": _project_title(self.rng),
                "closed": project_id in closed,
                "donations_prohibited": project_id in refusing and project_id not in closed,
            }

    def _need(self, project_id: int, *, small: bool) -> Event:
        """A new need of the project with a fresh id."""
        self.next_need_id += self.rng.randint(1, 7)
        low, high = (20_000, 100_000) if small else (5_000, 2_000_000)
        amount = _round_amount(self.rng, low, high)
        self.requested[project_id] += amount
        self.cumulative = []
        return {
            "event": "need",
            "id": self.next_need_id,
            "project_id": project_id,
            "title": self.rng.choice(_NEED_TITLES),
            "requested_amount_in_cents": amount,
        }

    def _membership_events(self) -> Iterator[Event]:
        """Each client's projects; every client has a hot project, so one always accepts."""
        for permalink in DEMO_CLIENTS:
            count = min(len(self.project_ids), self.rng.randint(20, 120) * self.scale)
            chosen = set(self.rng.sample(self.project_ids, count)) | {self.hot[0]}
            if permalink == DEMO_CLIENTS[0]:
                chosen |= set(self.hot)
            self.members[permalink] = sorted(chosen)
            for project_id in self.members[permalink]:
                yield {
                    "event": "client_project",
                    "client_id": permalink,
                    "project_id": project_id,
                    "member": True,
                }

    def _fund_events(self) -> Iterator[Event]:
        """Four matching funds of clients, each matching some of its client's projects."""
        for fund_id, (client_id, title) in enumerate(_FUNDS, start=1):
            projects = self.members[client_id]
            matched = self.rng.sample(projects, min(len(projects), self.rng.randint(5, 30)))
            yield {
                "event": "matching_fund",
                "id": fund_id,
                "client_id": client_id,
                "title": title,
                "provided_amount_in_cents": _round_amount(self.rng, 500_000, 3_000_000),
                "maximum_matching_amount_in_cents": self.rng.choice((2_500, 5_000, 10_000)),
                "state": "closed" if fund_id == len(_FUNDS) else "activated",
                "project_ids": sorted(matched),
            }

    def timeline_events(self) -> Iterator[Event]:
        """Donations, forwardings and revocations in time order, with late updates among them."""
        rest = ["f"] * 60 * self.scale + ["r"] * 80 * self.scale
        rest += ["d"] * (5700 * self.scale)
        self.rng.shuffle(rest)
        kinds = ["d"] * (300 * self.scale) + rest  # a warm-up so pools have money first
        late: dict[int, list[str]] = {}
        for kind, low, high, count in (("need", 0.6, 1.0, 6), ("close", 0.4, 0.9, 2)):
            for _ in range(count * self.scale):
                index = self.rng.randrange(int(len(kinds) * low), int(len(kinds) * high))
                late.setdefault(index, []).append(kind)
        makers = {"d": self._donation, "f": self._forwarding, "r": self._revocation}
        step = int((_END - _START).total_seconds()) // len(kinds)
        for index, kind in enumerate(kinds):
            for update in late.get(index, []):
                yield self._late_need() if update == "need" else self._close_project()
            at = _START + timedelta(seconds=index * step + self.rng.randrange(max(step, 1)))
            event = makers[kind](at)  # None when no forwarding or revocation is possible
            if event is not None:
                yield event

    def _late_need(self) -> Event:
        """A need added after donations, first to the over-funded projects."""
        index, self.late_needs = self.late_needs, self.late_needs + 1
        if index < len(self.hot):
            return self._need(self.hot[index], small=True)
        return self._need(self.rng.choice(self.project_ids), small=False)

    def _close_project(self) -> Event:
        """Close an accepting project of a pool client, so client donations get redirected."""
        candidates = {p for c in self.pools for p in self.members[c]} & self.accepts
        project_id = self.rng.choice(sorted(candidates - set(self.hot)))
        self.accepting.remove(project_id)
        self.accepts.discard(project_id)
        self.cumulative = []
        return {"event": "project", "id": project_id, "closed": True}

    def _donation(self, at: datetime) -> Event:
        """A donation through a channel drawn by its share."""
        self.donations += 1
        token = f"d{self.donations:06d}"
        channel = self.rng.choices(_CHANNELS, _CHANNEL_WEIGHTS)[0]
        if channel == "client":
            return self._client_donation(token, at)
        event: Event = {"event": "donation", "token": token, "channel": channel}
        amount = _gift_amount(self.rng)
        if channel == "offline":
            pool = self.rng.choice(sorted(self.pools))
            amount = _round_amount(self.rng, 10_000, 300_000)
            self.pools[pool] += amount
            event["receiver"] = {"type": "pool", "client_id": pool}
        else:
            hot = self.rng.random() < 0.02
            project_id = self.rng.choice(self.hot) if hot else self._popular_project()
            event["receiver"] = {"type": "project", "id": project_id}
            pool = None
        if channel == "platform" and self.rng.random() < 0.1:
            event["tracking_via"] = self.rng.choice(_TRACKING)
        return self._booked(event, pool, amount, at)

    def _popular_project(self) -> int:
        """An accepting project drawn by its requested amount: large needs attract more donors."""
        if not self.cumulative:
            self.cumulative = list(accumulate(self.requested[p] for p in self.accepting))
        return self.rng.choices(self.accepting, cum_weights=self.cumulative)[0]

    def _weighted(self, projects: list[int]) -> int:
        """One of the projects, drawn by its requested amount."""
        return self.rng.choices(projects, [self.requested[p] for p in projects])[0]

    def _client_donation(self, token: str, at: datetime) -> Event:
        """A donation on a client's donation page, with the client's own reference."""
        client = self.rng.choices(DEMO_CLIENTS, [c[4] for c in _CLIENTS])[0]
        receiver, pool = self._client_receiver(client)
        event: Event = {
            "event": "donation",
            "token": token,
            "channel": "client",
            "client_id": client,
            "receiver": receiver,
            "client_reference": self._reference(client),
        }
        if self.rng.random() < 0.3:
            event["tracking_via"] = self.rng.choice(_TRACKING)
        amount = _gift_amount(self.rng)
        if pool is not None:
            self.pools[pool] += amount
        return self._booked(event, pool, amount, at)

    def _client_receiver(self, client: str) -> tuple[dict[str, object], str | None]:
        """A project of the client, its pool, or a refusing project redirected to its pool."""
        members = self.members[client]
        refusing = [p for p in members if p not in self.accepts]
        roll = self.rng.random()
        if client in self.pools and roll < 0.15:
            return {"type": "pool", "client_id": client}, client
        if client in self.pools and roll < 0.18 and refusing:
            return {"type": "project", "id": self.rng.choice(refusing)}, client
        accepting = [p for p in members if p in self.accepts]
        return {"type": "project", "id": self._weighted(accepting)}, None

    def _reference(self, client: str) -> str:
        """The client's next own reference, shared by its donations and forwardings."""
        self.references[client] += 1
        prefix = next(c[3] for c in _CLIENTS if c[0] == client)
        return f"{prefix}-{self.references[client]:06d}"

    def _booked(self, event: Event, pool: str | None, amount: int, at: datetime) -> Event:
        """Finish a donation event and remember it for later revocations."""
        event["amount_in_cents"] = amount
        event["created_at"] = _iso(at)
        self.booked.append(_Booked(str(event["token"]), at, pool, amount))
        return event

    def _forwarding(self, at: datetime) -> Event | None:
        """Forward pool money to an accepting project of the pool's client, if there is money."""
        funded = sorted(c for c, balance in self.pools.items() if balance >= 5_000)
        if not funded:
            return None
        client = self.rng.choice(funded)
        balance = self.pools[client]
        amount = min(_round_amount(self.rng, 10_000, 1_000_000), balance - balance % 100)
        self.pools[client] -= amount
        self.forwardings += 1
        accepting = [p for p in self.members[client] if p in self.accepts]
        return {
            "event": "forwarding",
            "token": f"f{self.forwardings:04d}",
            "client_id": client,
            "project_id": self._weighted(accepting),
            "amount_in_cents": amount,
            "client_reference": self._reference(client),
            "created_at": _iso(at),
        }

    def _revocation(self, at: datetime) -> Event | None:
        """Revoke a recent donation, unless its pool has already passed the money on."""
        candidates = [
            booked
            for booked in self.booked[-300:]
            if at - booked.at <= _REVOCATION_WINDOW
            and booked.token not in self.revoked
            and (booked.pool is None or self.pools[booked.pool] >= booked.amount)
        ]
        if not candidates:
            return None
        booked = self.rng.choice(candidates)
        self.revoked.add(booked.token)
        if booked.pool is not None:
            self.pools[booked.pool] -= booked.amount
        return {"event": "revocation", "token": booked.token}
