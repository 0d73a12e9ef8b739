"""Configuration and device model (variables, NotifyReport data) of the OCPP 2.0.1 simulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

HEARTBEAT_INTERVAL = ("OCPPCommCtrlr", "HeartbeatInterval")
TX_MEASURANDS = "Energy.Active.Import.Register,Power.Active.Import,Current.Import,SoC"


@dataclass
class EvseSpec:
    evse_id: int
    connectors: tuple[str, ...] = ("cType2",)  # ConnectorEnumType per connector id 1..n
    max_power_w: int | None = 22000
    supply_phases: int | None = 3


@dataclass
class SimulatorConfig201:
    url: str  # base URL; the charger id is appended as "/{charger_id}"
    charger_id: str
    password: str | None = None  # HTTP Basic auth (username = charger_id) when set
    evses: tuple[EvseSpec, ...] = (EvseSpec(1),)
    vendor: str = "ocpi-bridge-sim"
    model: str = "SIM-201"
    serial_number: str | None = None
    firmware_version: str | None = "1.0.0"
    response_timeout: float = 10.0
    subprotocols: tuple[str, ...] = ("ocpp2.0.1",)
    report_page_size: int = 4  # reportData entries per NotifyReport page
    auto_start: bool = False  # an accepted RequestStartTransaction starts a transaction
    auto_stop: bool = False  # an accepted RequestStopTransaction ends it
    auto_energy_wh: int = 1000  # energy of a transaction between remote start and remote stop


def default_variables(config: SimulatorConfig201) -> dict[tuple[str, str], str]:
    """Values answered by GetVariables, keyed by (component name, variable name)."""
    return {
        ("ChargingStation", "Model"): config.model,
        ("ChargingStation", "VendorName"): config.vendor,
        ("AuthCtrlr", "AuthorizeRemoteStart"): "false",
        ("AuthCtrlr", "LocalPreAuthorize"): "false",
        HEARTBEAT_INTERVAL: "300",
        ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
        ("SampledDataCtrlr", "TxUpdatedMeasurands"): TX_MEASURANDS,
        ("SampledDataCtrlr", "TxEndedMeasurands"): "Energy.Active.Import.Register",
        ("TxCtrlr", "EVConnectionTimeOut"): "60",
        ("TxCtrlr", "TxStartPoint"): "PowerPathClosed",
        ("TxCtrlr", "TxStopPoint"): "EVConnected,Authorized",
    }


def report_item(
    component: dict[str, Any],
    variable: str,
    value: str,
    data_type: str,
    *,
    attribute_types: tuple[str, ...] = ("Actual",),
    unit: str | None = None,
) -> dict[str, Any]:
    """One schema-valid ReportDataType entry (read-only attributes, no monitoring)."""
    characteristics: dict[str, Any] = {"dataType": data_type, "supportsMonitoring": False}
    if unit is not None:
        characteristics["unit"] = unit
    return {
        "component": component,
        "variable": {"name": variable},
        "variableAttribute": [
            {"type": kind, "value": value, "mutability": "ReadOnly"} for kind in attribute_types
        ],
        "variableCharacteristics": characteristics,
    }


def report_data(config: SimulatorConfig201) -> list[dict[str, Any]]:
    """Every reportData entry of a base report, in station -> EVSE -> connector order."""
    station = {"name": "ChargingStation"}
    items = [
        report_item(station, "Model", config.model, "string"),
        report_item(station, "VendorName", config.vendor, "string"),
    ]
    for evse in config.evses:
        component: dict[str, Any] = {"name": "EVSE", "evse": {"id": evse.evse_id}}
        items.append(report_item(component, "Available", "true", "boolean"))
        if evse.max_power_w is not None:
            power = str(evse.max_power_w)
            kinds = ("MaxSet", "Actual")
            items.append(
                report_item(component, "Power", power, "integer", attribute_types=kinds, unit="W")
            )
        if evse.supply_phases is not None:
            phases = str(evse.supply_phases)
            items.append(report_item(component, "SupplyPhases", phases, "integer"))
        for connector_id, connector_type in enumerate(evse.connectors, start=1):
            location = {"id": evse.evse_id, "connectorId": connector_id}
            component = {"name": "Connector", "evse": location}
            items.append(report_item(component, "ConnectorType", connector_type, "string"))
            if evse.supply_phases is not None:
                phases = str(evse.supply_phases)
                items.append(report_item(component, "SupplyPhases", phases, "integer"))
    return items


def paginate(items: list[dict[str, Any]], page_size: int) -> list[list[dict[str, Any]]]:
    """Split ``items`` into pages of at most ``page_size`` (at least one page, maybe empty)."""
    size = max(1, page_size)
    return [items[i : i + size] for i in range(0, len(items), size)] or [[]]
