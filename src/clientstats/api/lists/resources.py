"""What each drill-down resource reads and how its objects link to the others."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from clientstats.api.lists.links import link
from clientstats.domain.list_query import (
    ListQuery,
    ListSpec,
    boolean,
    one_of,
    positive_id,
    reference,
    timestamp,
)
from clientstats.services import listing, money_listing
from clientstats.services.listing import ClientInfo, Item, Page
from clientstats.services.listing import Snapshot as Connection

PROJECTS = ListSpec(
    facets={"closed": boolean, "donations_prohibited": boolean, "completed": boolean},
    order_keys=(
        "id",
        "title",
        "progress_percentage",
        "open_amount",
        "donated_amount",
        "last_donation_at",
    ),
    default_order=(("id", False),),
)
NEEDS = ListSpec(facets={"completed": boolean}, order_keys=("id",), default_order=(("id", False),))
CLIENT_DONATIONS = ListSpec(
    facets={
        "state": one_of("confirmed", "revoked"),
        "client_reference": reference,
        "receiver_type": one_of("Project", "Pool"),
        "project_id": positive_id,
        "created_at_from": timestamp,
        "created_at_to": timestamp,
    },
    order_keys=("created_at", "amount"),
    default_order=(("created_at", True),),
    default_facets={"state": "confirmed"},
)
FORWARDINGS = ListSpec(
    facets={"state": one_of("confirmed", "failed", "revoked")},
    order_keys=("created_at", "amount"),
    default_order=(("created_at", True),),
    default_facets={"state": "confirmed"},
)
FUNDS = ListSpec(
    facets={"state": one_of("activated", "closed")},
    order_keys=("id",),
    default_order=(("id", False),),
)


@dataclass(frozen=True, slots=True)
class Context:
    """One request to a resource: where its links point and what it asks for."""

    api: str  # scheme://host/{locale}/api_v4
    permalink: str | None
    ids: dict[str, int]
    key: str | None  # a client donation's token or reference
    query: ListQuery | None
    after: list[Any] | None
    self_url: str = ""
    list_url: str = ""
    list_id: str = ""

    @property
    def client_url(self) -> str:
        return f"{self.api}/clients/{self.permalink}"


Reader = Callable[[Connection, ClientInfo | None, Context], Page | Item]
Linker = Callable[[Context, ClientInfo | None, Item], list[dict[str, str]]]


@dataclass(frozen=True, slots=True)
class Resource:
    """A read endpoint: its list rules (None for one object), reader and links."""

    name: str
    spec: ListSpec | None
    read: Reader
    links: Linker
    credentials_always: bool = False
    needs_client: bool = True


def _client_links(ctx: Context, client: ClientInfo | None, item: Item) -> list[dict[str, str]]:
    assert client is not None
    base = ctx.client_url
    links = [
        link("self", f"{base}.json"),
        link("project_statistics", f"{base}/project_statistics.json"),
        link("projects", f"{base}/projects.json"),
        link("client_donations", f"{base}/client_donations.json"),
        link("matching_funds", f"{base}/matching_funds.json"),
    ]
    if client.has_pool:
        links += [
            link("pool", f"{base}/pool.json"),
            link("new_pool_donation_pledge", f"{base}/pool/donation_pledges.json"),
        ]
    return links


def _project_links(ctx: Context, client: ClientInfo | None, item: Item) -> list[dict[str, str]]:
    project = f"{ctx.client_url}/projects/{item['id']}"
    return [
        link("self", f"{project}.json"),
        link("needs", f"{ctx.api}/projects/{item['id']}/needs.json"),
        link("new_donation_pledge", f"{project}/donation_pledges.json"),
        link("new_forwarding_request", f"{project}/forwarding_requests.json"),
    ]


def _need_links(ctx: Context, client: ClientInfo | None, item: Item) -> list[dict[str, str]]:
    needs = f"{ctx.api}/projects/{item.pop('project_id')}/needs"
    return [link("self", f"{needs}/{item['id']}.json"), link("project", f"{needs}.json")]


def _donation_links(ctx: Context, client: ClientInfo | None, item: Item) -> list[dict[str, str]]:
    base = ctx.client_url
    if item["receiver_type"] == "Pool":
        receiver = f"{base}/pool.json"
    else:
        receiver = f"{base}/projects/{item['receiver_id']}.json"
    links = [
        link("self", f"{base}/client_donations/{item['token']}.json"),
        link("receiver", receiver),
    ]
    pledge = item.pop("pledge_id")
    if pledge is not None:
        links.append(link("donation_pledge", f"{base}/donation_pledges/{pledge}.json"))
    return links


def _pool_links(ctx: Context, client: ClientInfo | None, item: Item) -> list[dict[str, str]]:
    pool = f"{ctx.client_url}/pool"
    return [
        link("self", f"{pool}.json"),
        link("forwardings", f"{pool}/forwardings.json"),
        link("new_donation_pledge", f"{pool}/donation_pledges.json"),
    ]


def _forwarding_links(ctx: Context, client: ClientInfo | None, item: Item) -> list[dict[str, str]]:
    return [link("project", f"{ctx.client_url}/projects/{item['project_id']}.json")]


def _fund_links(ctx: Context, client: ClientInfo | None, item: Item) -> list[dict[str, str]]:
    return [link("self", f"{ctx.client_url}/matching_funds/{item['id']}.json")]


def _client_item(conn: Connection, client: ClientInfo | None, ctx: Context) -> Item:
    assert client is not None
    return {
        "id": client.permalink,
        "name": client.name,
        "has_pool": client.has_pool,
        "statistics_private": client.statistics_private,
    }


def _lister(read: Callable[..., Page]) -> Reader:
    def run(conn: Connection, client: ClientInfo | None, ctx: Context) -> Page:
        assert ctx.query is not None
        return read(conn, client, ctx.query, ctx.after)

    return run


def _needs(conn: Connection, client: ClientInfo | None, ctx: Context) -> Page:
    assert ctx.query is not None
    return listing.list_needs(conn, ctx.ids["project_id"], ctx.query, ctx.after)


def _need(conn: Connection, client: ClientInfo | None, ctx: Context) -> Item:
    return listing.get_need(conn, ctx.ids["project_id"], ctx.ids["need_id"])


def _project(conn: Connection, client: ClientInfo | None, ctx: Context) -> Item:
    assert client is not None
    return listing.get_project(conn, client, ctx.ids["project_id"])


def _donation(conn: Connection, client: ClientInfo | None, ctx: Context) -> Item:
    assert client is not None and ctx.key is not None
    return money_listing.get_client_donation(conn, client, ctx.key)


def _pool(conn: Connection, client: ClientInfo | None, ctx: Context) -> Item:
    assert client is not None
    return money_listing.get_pool(client)


def _fund(conn: Connection, client: ClientInfo | None, ctx: Context) -> Item:
    assert client is not None
    return listing.get_fund(conn, client, ctx.ids["fund_id"])


# Path (under /{locale}/api_v4/) -> resource; `.json` is optional on each.
RESOURCES: dict[str, Resource] = {
    "/clients/{client_id}": Resource("client", None, _client_item, _client_links),
    "/clients/{client_id}/projects": Resource(
        "projects", PROJECTS, _lister(listing.list_projects), _project_links
    ),
    "/clients/{client_id}/projects/{project_id}": Resource(
        "project", None, _project, _project_links
    ),
    "/projects/{project_id}/needs": Resource(
        "needs", NEEDS, _needs, _need_links, needs_client=False
    ),
    "/projects/{project_id}/needs/{need_id}": Resource(
        "need", None, _need, _need_links, needs_client=False
    ),
    "/clients/{client_id}/client_donations": Resource(
        "client_donations",
        CLIENT_DONATIONS,
        _lister(money_listing.list_client_donations),
        _donation_links,
        credentials_always=True,
    ),
    "/clients/{client_id}/client_donations/{key}": Resource(
        "client_donation", None, _donation, _donation_links, credentials_always=True
    ),
    "/clients/{client_id}/pool": Resource("pool", None, _pool, _pool_links),
    "/clients/{client_id}/pool/forwardings": Resource(
        "forwardings", FORWARDINGS, _lister(money_listing.list_forwardings), _forwarding_links
    ),
    "/clients/{client_id}/matching_funds": Resource(
        "matching_funds", FUNDS, _lister(listing.list_funds), _fund_links
    ),
    "/clients/{client_id}/matching_funds/{fund_id}": Resource(
        "matching_fund", None, _fund, _fund_links
    ),
}
