"""Named OCPP 1.6 scenarios for tests and the CLI.

Each scenario is ``async def name(sim, **options) -> ScenarioResult``. Unknown options are
ignored. Common options: ``connector_id`` (1), ``id_tag`` ("SIMTAG01"), ``meter_start_wh`` (1000),
``samples`` (3), ``step_wh`` (500), ``soc_start`` (20), ``start_time`` (aware datetime of the
transaction start; default ``now - (samples + 1)`` minutes) and ``on_response``, a callback
``(action, response)`` invoked as each response arrives.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulators.charger.common import format_timestamp, utc_now
from simulators.charger.v16 import ChargerSimulator16

ResponseCallback = Callable[[str, dict[str, Any]], None]
Scenario = Callable[..., Awaitable["ScenarioResult"]]

VOLTAGE_V = 230
PHASES = ("L1", "L2", "L3")


class ScenarioError(Exception):
    """The central system's answers did not allow the scenario to continue."""


@dataclass
class ScenarioResult:
    transaction_ids: list[int] = field(default_factory=list)
    responses: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    on_response: ResponseCallback | None = field(default=None, repr=False, compare=False)

    def record(self, action: str, response: dict[str, Any]) -> dict[str, Any]:
        self.responses.append((action, response))
        if self.on_response is not None:
            self.on_response(action, response)
        return response


@dataclass(frozen=True)
class SessionPlan:
    """Meter readings and timestamps of one simulated charging session."""

    connector_id: int
    id_tag: str
    meter_start_wh: int
    step_wh: int
    samples: int
    soc_start: int
    start: datetime
    unit: str  # "Wh" or "kWh" for the energy register

    @classmethod
    def from_options(cls, options: dict[str, Any], unit: str = "Wh") -> SessionPlan:
        samples = int(options.get("samples", 3))
        start = options.get("start_time") or utc_now() - timedelta(minutes=samples + 1)
        return cls(
            connector_id=int(options.get("connector_id", 1)),
            id_tag=str(options.get("id_tag", "SIMTAG01")),
            meter_start_wh=int(options.get("meter_start_wh", 1000)),
            step_wh=int(options.get("step_wh", 500)),
            samples=samples,
            soc_start=int(options.get("soc_start", 20)),
            start=start,
            unit=unit,
        )

    def at(self, minute: int) -> datetime:
        return self.start + timedelta(minutes=minute)

    def register_wh(self, sample: int) -> int:
        return self.meter_start_wh + sample * self.step_wh

    @property
    def stop_time(self) -> datetime:
        return self.at(self.samples + 1)

    @property
    def meter_stop_wh(self) -> int:
        return self.register_wh(self.samples)

    def energy(self, wh: int, context: str) -> dict[str, Any]:
        value = str(wh) if self.unit == "Wh" else f"{wh / 1000:.3f}"
        return {
            "value": value,
            "context": context,
            "measurand": "Energy.Active.Import.Register",
            "location": "Outlet",
            "unit": self.unit,
        }

    def periodic(self, sample: int) -> list[dict[str, Any]]:
        """Sampled values of the ``sample``-th (1-based) periodic reading, one minute apart."""
        power_w = self.step_wh * 60  # step_wh per minute
        amps = f"{power_w / (len(PHASES) * VOLTAGE_V):.1f}"
        common = {"context": "Sample.Periodic", "location": "Outlet"}
        return [
            self.energy(self.register_wh(sample), "Sample.Periodic"),
            {**common, "value": str(power_w), "measurand": "Power.Active.Import", "unit": "W"},
            *(
                {**common, "value": amps, "measurand": "Current.Import", "phase": p, "unit": "A"}
                for p in PHASES
            ),
            {
                "value": str(min(100, self.soc_start + 2 * sample)),
                "context": "Sample.Periodic",
                "measurand": "SoC",
                "location": "EV",
                "unit": "Percent",
            },
        ]

    def transaction_data(self) -> list[dict[str, Any]]:
        return [
            {
                "timestamp": format_timestamp(self.start),
                "sampledValue": [self.energy(self.meter_start_wh, "Transaction.Begin")],
            },
            {
                "timestamp": format_timestamp(self.stop_time),
                "sampledValue": [self.energy(self.meter_stop_wh, "Transaction.End")],
            },
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
