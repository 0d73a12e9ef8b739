"""Tokens SENDER: the paginated token list and real-time authorization."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from simulators.emsp.models import Token
from simulators.emsp.server import EmspSimulator
from tests.simulators.emsp.fake_cpo import FakeCpo

START = datetime(2024, 1, 1, tzinfo=UTC)


def add_tokens(emsp: EmspSimulator, count: int) -> None:
    """Tokens T0..Tn, T<k> last updated at START + k minutes (inserted in reverse order)."""
    for n in reversed(range(count)):
        token = emsp.driver.add_token(f"T{n}")
        emsp.state.put_token(
            token.model_copy(update={"last_updated": START + timedelta(minutes=n)})
        )


def next_link(link: str | None) -> str | None:
    if link is None:
        return None
    match = re.fullmatch(r'<([^>]+)>; rel="next"', link)
    assert match, link
    return match.group(1)


async def test_token_list_pages_follow_link_when_more_than_the_limit(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.state.config.max_limit = 2
    add_tokens(emsp, 5)
    url: str | None = peer.emsp_url("tokens")
    uids: list[str] = []
    pages = 0
    while url is not None:
        response = await peer.call("GET", url)
        assert response.status_code == 200
        assert response.headers["X-Total-Count"] == "5"
        assert response.headers["X-Limit"] == "2"
        for item in response.json()["data"]:
            Token.model_validate(item)
            uids.append(item["uid"])
        url = next_link(response.headers.get("Link"))
        pages += 1
    assert pages == 3
    assert uids == ["T0", "T1", "T2", "T3", "T4"]  # oldest first


async def test_token_list_link_repeats_dates_and_limit_when_filtered(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    add_tokens(emsp, 6)
    params = {"date_from": "2024-01-01T00:01:00Z", "date_to": "2024-01-01T00:05:00Z", "limit": "3"}
    first = await peer.call("GET", peer.emsp_url("tokens"), params=params)

    assert [t["uid"] for t in first.json()["data"]] == ["T1", "T2", "T3"]
    assert first.headers["X-Total-Count"] == "4"  # date_from inclusive, date_to exclusive
    link = next_link(first.headers["Link"])
    assert link is not None
    for part in (
        "offset=3",
        "limit=3",
        "date_from=2024-01-01T00%3A01%3A00Z",
        "date_to=2024-01-01T00%3A05%3A00Z",
    ):
        assert part in link
    last = await peer.call("GET", link)
    assert [t["uid"] for t in last.json()["data"]] == ["T4"]
    assert "Link" not in last.headers


async def test_token_list_limit_is_capped_when_the_client_asks_more(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.state.config.max_limit = 2
    add_tokens(emsp, 3)
    response = await peer.call("GET", peer.emsp_url("tokens"), params={"limit": "100"})
    assert len(response.json()["data"]) == 2
    link = next_link(response.headers["Link"])
    assert link is not None
    assert "limit=2" in link


@pytest.mark.parametrize("params", [{"offset": "x"}, {"date_from": "2024-01-01T00:00:00+01:00"}])
async def test_token_list_is_2001_when_parameters_are_invalid(
    peer: FakeCpo, params: dict[str, str]
) -> None:
    response = await peer.call("GET", peer.emsp_url("tokens"), params=params)
    assert response.json()["status_code"] == 2001


async def test_authorize_is_404_2004_without_data_when_the_token_is_unknown(
    peer: FakeCpo,
) -> None:
    response = await peer.call("POST", peer.emsp_url("tokens", "NOPE", "authorize"))
    assert response.status_code == 404
    assert response.json()["status_code"] == 2004
    assert "data" not in response.json()


async def test_authorize_allows_a_valid_token_and_echoes_the_location_when_given(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.driver.add_token("TAG1")
    response = await peer.call(
        "POST",
        peer.emsp_url("tokens", "tag1", "authorize"),  # uid is case-insensitive
        params={"type": "RFID"},
        body={"location_id": "L1", "evse_uids": ["E1"]},
    )
    data = response.json()["data"]
    assert response.status_code == 200
    assert data["allowed"] == "ALLOWED"
    assert data["token"]["uid"] == "TAG1"
    assert data["location"] == {"location_id": "L1", "evse_uids": ["E1"]}
    assert 0 < len(data["authorization_reference"]) <= 36


async def test_authorize_answers_blocked_with_http_200_when_the_token_is_invalid(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.driver.add_token("TAG2", valid=False)
    response = await peer.call("POST", peer.emsp_url("tokens", "TAG2", "authorize"))
    assert response.status_code == 200
    assert response.json()["data"]["allowed"] == "BLOCKED"


async def test_authorize_answers_the_configured_value_when_one_is_set(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.driver.add_token("APP1", token_type="APP_USER", allowed="NO_CREDIT")
    rfid = await peer.call("POST", peer.emsp_url("tokens", "APP1", "authorize"))
    app = await peer.call(
        "POST", peer.emsp_url("tokens", "APP1", "authorize"), params={"type": "APP_USER"}
    )
    assert rfid.status_code == 404  # the type defaults to RFID
    assert app.json()["data"]["allowed"] == "NO_CREDIT"


async def test_authorize_is_2001_when_the_location_references_are_invalid(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    emsp.driver.add_token("TAG1")
    response = await peer.call(
        "POST", peer.emsp_url("tokens", "TAG1", "authorize"), body={"evse_uids": ["E1"]}
    )
    assert response.json()["status_code"] == 2001
    assert "location_id" in response.json()["status_message"]
