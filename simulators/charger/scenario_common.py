"""Scenario building blocks shared by the OCPP 1.6 and 2.0.1 scenarios.

``SessionPlan`` fixes the meter readings and timestamps of a simulated charging session so that
the 1.6 and 2.0.1 ``session`` scenarios report identical energy for identical options.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from simulators.charger.common import format_timestamp, utc_now

ResponseCallback = Callable[[str, dict[str, Any]], None]
Scenario = Callable[..., Awaitable["ScenarioResult"]]

VOLTAGE_V = 230
PHASES = ("L1", "L2", "L3")


class ScenarioError(Exception):
    """The central system's answers did not allow the scenario to continue."""


@dataclass
class ScenarioResult:
    transaction_ids: list[int | str] = field(default_factory=list)  # str for OCPP 2.0.1
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
