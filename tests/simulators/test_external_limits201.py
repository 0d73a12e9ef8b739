"""OCPP 2.0.1 simulator: an external limit it reports (NotifyChargingLimit with a schedule)
limits its composite schedule until it reports the limit cleared (ClearedChargingLimit),
against the minimal central system of ``test_simulator201`` on real sockets."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from ocpp.v201 import call

from simulators.charger.smart_charging import (
    EXTERNAL_PROFILE,
    composite_schedule,
    external_constraint,
)
from simulators.charger.v201 import ChargerSimulator201
from tests.simulators.test_commands201 import central, csms, sim, tx_profile
from tests.simulators.test_simulator201 import MiniCsms201

__all__ = ["csms", "sim"]  # the fixtures

NOW = datetime(2025, 1, 1, 12, 0, 0, 500_000, tzinfo=UTC)


def schedule_w(limit: float, schedule_id: int = 1) -> dict[str, Any]:
    return {
        "id": schedule_id,
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
    }


def test_an_external_limit_is_an_absolute_external_constraint_per_unit_and_source() -> None:
    ems = external_constraint(schedule_w(4000), unit_id=1, source="EMS", now=NOW)
    grid = external_constraint(schedule_w(3000), unit_id=1, source="SO", now=NOW)
    station = external_constraint(schedule_w(3000), unit_id=0, source="EMS", now=NOW)

    assert ems.purpose == EXTERNAL_PROFILE
    assert ems.kind == "Absolute"
    assert ems.installed_at == NOW.replace(microsecond=0)
    assert ems.raw["chargingLimitSource"] == "EMS"
    assert len({ems.profile_id, grid.profile_id, station.profile_id}) == 3
    assert all(p.profile_id < 0 for p in (ems, grid, station))  # never a CSMS id
    assert ems.stack_level != grid.stack_level
    # From the second it was installed in, it limits a composite schedule.
    composite = composite_schedule([ems], start=NOW.replace(microsecond=0), duration=60)
    assert composite is not None
    assert composite.periods == ((0, Decimal(4000)),)


async def test_a_reported_limit_lowers_the_composite_schedule_until_it_is_cleared(
    sim: ChargerSimulator201, csms: MiniCsms201
) -> None:
    async def periods(evse_id: int = 1) -> list[dict[str, Any]]:
        answer = await central(csms).call(call.GetCompositeSchedule(duration=300, evse_id=evse_id))
        assert answer.status == "Accepted"
        found: list[dict[str, Any]] = answer.schedule["charging_schedule_period"]
        return found

    await sim.transaction_event("Started", "tx-1", "Authorized", evse=(1, 1))
    profile = tx_profile(1, 7400, "tx-1")
    set_profile = call.SetChargingProfile(evse_id=1, charging_profile=profile)
    accepted = await central(csms).call(set_profile)
    assert accepted.status == "Accepted"
    assert await periods() == [{"start_period": 0, "limit": 7400.0}]

    assert await sim.notify_charging_limit("EMS", evse_id=1, schedule=[schedule_w(4000)]) == {}
    assert csms.payloads("NotifyChargingLimit")[-1]["evseId"] == 1
    assert await periods() == [{"start_period": 0, "limit": 4000.0}]
    # A limit of the whole station (no evseId) applies to every EVSE, the lowest wins.
    await sim.notify_charging_limit("SO", schedule=[schedule_w(3000)])
    assert await periods() == [{"start_period": 0, "limit": 3000.0}]
    assert await periods(2) == [{"start_period": 0, "limit": 3000.0}]

    assert await sim.cleared_charging_limit("SO") == {}
    assert await periods() == [{"start_period": 0, "limit": 4000.0}]
    await sim.cleared_charging_limit("EMS", evse_id=1)
    assert await periods() == [{"start_period": 0, "limit": 7400.0}]
    assert csms.payloads("ClearedChargingLimit") == [
        {"chargingLimitSource": "SO"},
        {"chargingLimitSource": "EMS", "evseId": 1},
    ]
    assert sim.charging_profiles == {1: {1: profile}}
