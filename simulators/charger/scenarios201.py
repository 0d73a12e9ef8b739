"""Named OCPP 2.0.1 scenarios for tests and the CLI (same shape as ``scenarios.SCENARIOS``).

Each scenario is ``async def name(sim, **options) -> ScenarioResult``; unknown options are
ignored. Options: ``evse_id`` (1), ``connector_id`` (1), ``id_token`` (default: the 1.6 option
``id_tag``, else "SIMTAG01"), ``token_type`` ("ISO14443"), ``transaction_id`` (a new uuid4
string), ``meter_start_wh`` (1000), ``samples`` (3), ``step_wh`` (500), ``soc_start`` (20),
``start_time`` and ``on_response``, as in 1.6. Energy readings and their timestamps come from the
same ``SessionPlan`` as the 1.6 ``session`` scenario, so both report identical energy for
identical options. ``ScenarioResult.transaction_ids`` holds the 2.0.1 transaction id strings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from simulators.charger.common import format_timestamp
from simulators.charger.scenario_common import (
    Scenario,
    ScenarioError,
    ScenarioResult,
    SessionPlan,
)
from simulators.charger.v201 import ChargerSimulator201

Events = list[tuple[str, dict[str, Any]]]


def sampled_value_201(sampled: dict[str, Any]) -> dict[str, Any]:
    """A 1.6-style sampled value (string value, ``unit``) as a 2.0.1 SampledValueType."""
    converted = {k: v for k, v in sampled.items() if k not in ("value", "unit")}
    text = str(sampled["value"])
    converted["value"] = float(text) if "." in text else int(text)
    if "unit" in sampled:
        converted["unitOfMeasure"] = {"unit": sampled["unit"]}
    return converted


@dataclass(frozen=True)
class Session201:
    """A ``SessionPlan`` bound to a 2.0.1 transaction id, EVSE and id token."""

    plan: SessionPlan
    transaction_id: str
    evse_id: int
    id_token: tuple[str, str]

    @classmethod
    def from_options(cls, options: dict[str, Any], unit: str = "Wh") -> Session201:
        plan = SessionPlan.from_options(options, unit)
        return cls(
            plan=plan,
            transaction_id=str(options.get("transaction_id") or uuid.uuid4()),
            evse_id=int(options.get("evse_id", 1)),
            id_token=(
                str(options.get("id_token", plan.id_tag)),
                str(options.get("token_type", "ISO14443")),
            ),
        )

    @property
    def evse(self) -> tuple[int, int]:
        return self.evse_id, self.plan.connector_id

    def begin_meter(self) -> list[dict[str, Any]]:
        energy = self.plan.energy(self.plan.meter_start_wh, "Transaction.Begin")
        return [_meter_value(self.plan, 0, [energy])]

    def periodic_meter(self, sample: int) -> list[dict[str, Any]]:
        return [_meter_value(self.plan, sample, self.plan.periodic(sample))]

    def end_meter(self) -> list[dict[str, Any]]:
        energy = self.plan.energy(self.plan.meter_stop_wh, "Transaction.End")
        return [_meter_value(self.plan, self.plan.samples + 1, [energy])]


async def boot(sim: ChargerSimulator201, **options: Any) -> ScenarioResult:
    """BootNotification, then StatusNotification Available for every connector if accepted."""
    result = ScenarioResult(on_response=options.get("on_response"))
    if await _boot(sim, result, require_accepted=False):
        for evse in sim.config.evses:
            for connector_id in range(1, len(evse.connectors) + 1):
                response = await sim.status(evse.evse_id, connector_id, "Available")
                result.record("StatusNotification", response)
    return result


async def session(sim: ChargerSimulator201, **options: Any) -> ScenarioResult:
    return await _session(sim, Session201.from_options(options), options)


async def session_cable_first(sim: ChargerSimulator201, **options: Any) -> ScenarioResult:
    return await _session(sim, Session201.from_options(options), options, cable_first=True)


async def session_kwh(sim: ChargerSimulator201, **options: Any) -> ScenarioResult:
    return await _session(sim, Session201.from_options(options, unit="kWh"), options)


async def repeated_ended(sim: ChargerSimulator201, **options: Any) -> ScenarioResult:
    return await _session(sim, Session201.from_options(options), options, ends=2)


async def offline_session(sim: ChargerSimulator201, **options: Any) -> ScenarioResult:
    """Boot, go offline (and disconnect unless ``disconnect=False``), queue a session, replay."""
    tx = Session201.from_options(options)
    result = ScenarioResult(on_response=options.get("on_response"))
    await _boot(sim, result, require_accepted=True)
    result.record("StatusNotification", await sim.status(*tx.evse, "Available"))
    sim.go_offline()
    if options.get("disconnect", True):
        await sim.disconnect()
    await sim.transaction_event(
        "Started",
        tx.transaction_id,
        "Authorized",
        timestamp=tx.plan.start,
        evse=tx.evse,
        id_token=tx.id_token,
        charging_state="EVConnected",
        meter_value=tx.begin_meter(),
    )
    await _charge_and_end(sim, tx, ends=1)
    actions = sim.queued_actions
    for action, response in zip(actions, await sim.come_online(), strict=True):
        result.record(action, response)
    result.transaction_ids.append(tx.transaction_id)
    return result


SCENARIOS_201: dict[str, Scenario] = {
    "boot": boot,
    "session": session,
    "session-cable-first": session_cable_first,
    "session-kwh": session_kwh,
    "repeated-ended": repeated_ended,
    "offline-session": offline_session,
}


async def _boot(
    sim: ChargerSimulator201, result: ScenarioResult, *, require_accepted: bool
) -> bool:
    """Send BootNotification; return whether it was accepted (or raise if required)."""
    status = result.record("BootNotification", await sim.boot()).get("status")
    if status != "Accepted" and require_accepted:
        raise ScenarioError(f"BootNotification not accepted: {status}")
    return status == "Accepted"


async def _session(
    sim: ChargerSimulator201,
    tx: Session201,
    options: dict[str, Any],
    *,
    cable_first: bool = False,
    ends: int = 1,
) -> ScenarioResult:
    result = ScenarioResult(on_response=options.get("on_response"))
    plan = tx.plan
    await _boot(sim, result, require_accepted=True)
    result.record("StatusNotification", await sim.status(*tx.evse, "Available"))
    if not cable_first:
        result.record("Authorize", await sim.authorize(*tx.id_token))
    started = await sim.transaction_event(
        "Started",
        tx.transaction_id,
        "CablePluggedIn" if cable_first else "Authorized",
        timestamp=plan.start,
        evse=tx.evse,
        id_token=None if cable_first else tx.id_token,
        charging_state="EVConnected",
        meter_value=tx.begin_meter(),
    )
    result.record("TransactionEvent", started)
    result.transaction_ids.append(tx.transaction_id)
    result.record("StatusNotification", await sim.status(*tx.evse, "Occupied"))
    if cable_first:
        result.record("Authorize", await sim.authorize(*tx.id_token))
        authorized = await sim.transaction_event(
            "Updated", tx.transaction_id, "Authorized", timestamp=plan.start, id_token=tx.id_token
        )
        result.record("TransactionEvent", authorized)
    for action, response in await _charge_and_end(sim, tx, ends=ends):
        result.record(action, response)
    result.record("StatusNotification", await sim.status(*tx.evse, "Available"))
    return result


async def _charge_and_end(sim: ChargerSimulator201, tx: Session201, *, ends: int) -> Events:
    """ChargingStateChanged, the periodic samples and ``ends`` identical Ended events."""
    plan = tx.plan
    responses: Events = []
    charging = await sim.transaction_event(
        "Updated",
        tx.transaction_id,
        "ChargingStateChanged",
        timestamp=plan.start,
        charging_state="Charging",
    )
    responses.append(("TransactionEvent", charging))
    for sample in range(1, plan.samples + 1):
        periodic = await sim.transaction_event(
            "Updated",
            tx.transaction_id,
            "MeterValuePeriodic",
            timestamp=plan.at(sample),
            meter_value=tx.periodic_meter(sample),
        )
        responses.append(("TransactionEvent", periodic))
    seq_no = sim.next_seq_no(tx.transaction_id)
    for _ in range(ends):
        ended = await sim.transaction_event(
            "Ended",
            tx.transaction_id,
            "StopAuthorized",
            seq_no=seq_no,
            timestamp=plan.stop_time,
            id_token=tx.id_token,
            stopped_reason="Local",
            meter_value=tx.end_meter(),
        )
        responses.append(("TransactionEvent", ended))
    return responses


def _meter_value(plan: SessionPlan, minute: int, sampled: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "timestamp": format_timestamp(plan.at(minute)),
        "sampledValue": [sampled_value_201(s) for s in sampled],
    }
