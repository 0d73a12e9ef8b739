"""Fixtures: the eMSP simulator and the fake CPO, both on 127.0.0.1 with free ports."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from simulators.emsp.models import CredentialsRole
from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import Peer
from tests.simulators.emsp.fake_cpo import FakeCpo


@pytest.fixture
async def emsp() -> AsyncIterator[EmspSimulator]:
    async with EmspSimulator(port=0) as sim:
        yield sim


@pytest.fixture
async def cpo() -> AsyncIterator[FakeCpo]:
    fake = FakeCpo()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def registered(emsp: EmspSimulator, cpo: FakeCpo) -> FakeCpo:
    """The CPO registered with the simulator (it POSTed its credentials)."""
    response = await cpo.register_at(emsp.versions_url, emsp.driver.mint_token_a())
    assert response.json()["status_code"] == 1000, response.text
    return cpo


@pytest.fixture
async def peer(emsp: EmspSimulator) -> AsyncIterator[FakeCpo]:
    """A CPO known to the simulator without a handshake (no CPO server runs): it calls the
    simulator with token ``cpo-token`` and the routing headers of NL/CPO."""
    emsp.state.peer = Peer(
        versions_url="http://127.0.0.1:9/ocpi/cpo/versions",
        version="2.2.1",
        endpoints=[],
        roles=[
            CredentialsRole.model_validate(
                {
                    "role": "CPO",
                    "business_details": {"name": "Fake CPO"},
                    "party_id": "CPO",
                    "country_code": "NL",
                }
            )
        ],
        token_we_accept="cpo-token",
        token_we_present="emsp-token",
        registered_by="cpo",
    )
    fake = FakeCpo()
    fake.emsp_token = "cpo-token"
    fake.emsp_endpoints = {
        module: emsp.state.endpoint_url(module)
        for module in (
            "credentials",
            "locations",
            "sessions",
            "cdrs",
            "tariffs",
            "commands",
            "tokens",
            "chargingprofiles",
        )
    }
    try:
        yield fake
    finally:
        await fake.http.aclose()
