"""Named OCPP 1.6 scenarios for tests and the CLI.

Each scenario is ``async def name(sim, **options) -> ScenarioResult``. Unknown options are
ignored. Common options: ``connector_id`` (1), ``id_tag`` ("SIMTAG01"), ``meter_start_wh`` (1000),
``samples`` (3), ``step_wh`` (500), ``soc_start`` (20), ``start_time`` (aware datetime of the
transaction start; default ``now - (samples + 1)`` minutes) and ``on_response``, a callback
``(action, response)`` invoked as each response arrives.
"""

from __future__ import annotations

from typing import Any

from simulators.charger.scenario_common import (
    PHASES,
    VOLTAGE_V,
    ResponseCallback,
    Scenario,
    ScenarioError,
    ScenarioResult,
    SessionPlan,
)
from simulators.charger.v16 import ChargerSimulator16

__all__ = [
    "PHASES",
    "SCENARIOS",
    "VOLTAGE_V",
    "ResponseCallback",
    "Scenario",
    "ScenarioError",
    "ScenarioResult",
    "SessionPlan",
]


async def boot(sim: ChargerSimulator16, **options: Any) -> ScenarioResult:
    """BootNotification, then StatusNotification Available for connector 0..N if accepted."""
    result = ScenarioResult(on_response=options.get("on_response"))
    if await _boot(sim, result, require_accepted=False):
        for connector_id in range(sim.config.connectors + 1):
            result.record("StatusNotification", await sim.status(connector_id, "Available"))
    return result


async def session(sim: ChargerSimulator16, **options: Any) -> ScenarioResult:
    return await _session(sim, SessionPlan.from_options(options), options, stops=1)


async def session_kwh(sim: ChargerSimulator16, **options: Any) -> ScenarioResult:
    return await _session(sim, SessionPlan.from_options(options, unit="kWh"), options, stops=1)


async def repeated_stop(sim: ChargerSimulator16, **options: Any) -> ScenarioResult:
    return await _session(sim, SessionPlan.from_options(options), options, stops=2)


async def offline_session(sim: ChargerSimulator16, **options: Any) -> ScenarioResult:
    """Boot, go offline (and disconnect unless ``disconnect=False``), run a session, replay."""
    plan = SessionPlan.from_options(options)
    result = ScenarioResult(on_response=options.get("on_response"))
    await _boot(sim, result, require_accepted=True)
    result.record("StatusNotification", await sim.status(plan.connector_id, "Available"))
    sim.go_offline()
    if options.get("disconnect", True):
        await sim.disconnect()
    started = await sim.start_transaction(
        plan.connector_id, plan.id_tag, plan.meter_start_wh, timestamp=plan.start
    )
    placeholder = int(started["transactionId"])
    await _meter_and_stop(sim, plan, placeholder, stops=1)
    actions = sim.queued_actions
    for action, response in zip(actions, await sim.come_online(), strict=True):
        result.record(action, response)
    result.transaction_ids.append(sim.transaction_id_map[placeholder])
    return result


SCENARIOS: dict[str, Scenario] = {
    "boot": boot,
    "session": session,
    "session-kwh": session_kwh,
    "repeated-stop": repeated_stop,
    "offline-session": offline_session,
}


async def _boot(sim: ChargerSimulator16, result: ScenarioResult, *, require_accepted: bool) -> bool:
    """Send BootNotification; return whether it was accepted (or raise if required)."""
    status = result.record("BootNotification", await sim.boot()).get("status")
    if status != "Accepted" and require_accepted:
        raise ScenarioError(f"BootNotification not accepted: {status}")
    return status == "Accepted"


async def _session(
    sim: ChargerSimulator16, plan: SessionPlan, options: dict[str, Any], *, stops: int
) -> ScenarioResult:
    result = ScenarioResult(on_response=options.get("on_response"))
    connector = plan.connector_id
    await _boot(sim, result, require_accepted=True)
    result.record("StatusNotification", await sim.status(connector, "Available"))
    result.record("Authorize", await sim.authorize(plan.id_tag))
    result.record("StatusNotification", await sim.status(connector, "Preparing"))
    started = result.record(
        "StartTransaction",
        await sim.start_transaction(
            connector, plan.id_tag, plan.meter_start_wh, timestamp=plan.start
        ),
    )
    transaction_id = int(started["transactionId"])
    result.transaction_ids.append(transaction_id)
    result.record("StatusNotification", await sim.status(connector, "Charging"))
    for action, response in await _meter_and_stop(sim, plan, transaction_id, stops=stops):
        result.record(action, response)
    result.record("StatusNotification", await sim.status(connector, "Finishing"))
    result.record("StatusNotification", await sim.status(connector, "Available"))
    return result


async def _meter_and_stop(
    sim: ChargerSimulator16, plan: SessionPlan, transaction_id: int, *, stops: int
) -> list[tuple[str, dict[str, Any]]]:
    responses: list[tuple[str, dict[str, Any]]] = []
    for sample in range(1, plan.samples + 1):
        response = await sim.meter_values(
            plan.connector_id,
            plan.periodic(sample),
            transaction_id=transaction_id,
            timestamp=plan.at(sample),
        )
        responses.append(("MeterValues", response))
    for _ in range(stops):
        response = await sim.stop_transaction(
            transaction_id,
            plan.meter_stop_wh,
            timestamp=plan.stop_time,
            reason="Local",
            id_tag=plan.id_tag,
            transaction_data=plan.transaction_data(),
        )
        responses.append(("StopTransaction", response))
    return responses
