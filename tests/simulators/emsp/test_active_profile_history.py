"""The eMSP simulator keeps every ActiveChargingProfile the CPO PUTs for a session, in order,
waits for a number of them and shows them in its control API."""

from __future__ import annotations

import asyncio

import httpx

from simulators.emsp.server import EmspSimulator
from tests.simulators.emsp.fake_cpo import FakeCpo
from tests.simulators.emsp.test_chargingprofiles import ACTIVE, PROFILE


async def test_every_active_charging_profile_put_is_kept_in_order(
    emsp: EmspSimulator, peer: FakeCpo
) -> None:
    waiting = asyncio.create_task(emsp.state.wait_for_active_charging_profiles("S1", 2))
    url = peer.emsp_url("chargingprofiles", "S1")
    lower = {**PROFILE, "charging_profile_period": [{"start_period": 0, "limit": 8}]}
    assert (await peer.call("PUT", url, body=ACTIVE)).status_code == 201
    assert not waiting.done()
    later = {"start_date_time": "2025-01-01T12:15:00Z", "charging_profile": lower}
    assert (await peer.call("PUT", url, body=later)).status_code == 200

    first, second = await waiting
    assert first.start_date_time.minute == 0
    assert second.start_date_time.minute == 15
    assert emsp.state.active_charging_profiles["S1"] == second
    # Refused bodies are not kept.
    refused = await peer.call("PUT", url, body={"charging_profile": PROFILE})
    assert refused.json()["status_code"] == 2001
    assert len(await emsp.state.wait_for_active_charging_profiles("S1", 1)) == 2

    async with httpx.AsyncClient(base_url=emsp.base_url) as control:
        shown = (await control.get("/_sim/chargingprofiles")).json()
    assert [p["start_date_time"] for p in shown["active_history"]["S1"]] == [
        "2025-01-01T12:00:00Z",
        "2025-01-01T12:15:00Z",
    ]
