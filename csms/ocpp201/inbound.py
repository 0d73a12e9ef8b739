"""Parse OCPP 2.0.1 payloads (camelCase, already schema-valid) into domain requests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from csms.clock import parse_ocpp_datetime
from csms.domain.model import (
    WHOLE_CHARGER,
    ChargingState,
    ConnectorInventory,
    ConnectorStatus,
    EvseInventory,
    EvseRef,
    IdToken,
    IdTokenKind,
    MeterReading,
    OcppVersion,
    ReadingContext,
    SignedMeterValue,
)
from csms.domain.requests import (
    AuthorizationRequest,
    BootRequest,
    ChargerIdentity,
    DataTransferRequest,
    InventoryPage,
    MeterValuesReport,
    StatusReport,
    TransactionEventReport,
    TransactionEventType,
)
from csms.domain.units import normalize
from csms.rpc.connection import HandlerError
from csms.rpc.frames import RpcError

Clock = Callable[[], datetime]

# A power of ten beyond this is no meter's unit: refuse it rather than compute absurd energy.
_MAX_MULTIPLIER = 9


def timestamp(value: str, field: str = "timestamp") -> datetime:
    """RFC 3339 to aware UTC; any offset is accepted and converted (chargers send local
    offsets despite the UTC advice)."""
    try:
        return parse_ocpp_datetime(value)
    except ValueError as exc:
        raise HandlerError(
            RpcError.PROPERTY_CONSTRAINT_VIOLATION,
            f"{field}: {value!r} is not an RFC 3339 date-time",
        ) from exc


def id_token(raw: dict[str, Any]) -> IdToken:
    return IdToken(value=raw["idToken"], kind=IdTokenKind(raw["type"]))


def evse_ref(evse_id: int, connector_id: int | None) -> EvseRef:
    if evse_id == 0:
        return WHOLE_CHARGER
    return EvseRef(ocpp_evse_id=evse_id, connector_id=connector_id or 1)


def parse_boot(charger_id: str, p: dict[str, Any]) -> BootRequest:
    station = p["chargingStation"]
    modem = station.get("modem") or {}
    return BootRequest(
        charger_id=charger_id,
        ocpp_version=OcppVersion.V201,
        reason=p["reason"],
        identity=ChargerIdentity(
            vendor=station["vendorName"],
            model=station["model"],
            serial_number=station.get("serialNumber"),
            firmware_version=station.get("firmwareVersion"),
            iccid=modem.get("iccid"),
            imsi=modem.get("imsi"),
        ),
    )


def parse_status(charger_id: str, p: dict[str, Any]) -> StatusReport:
    return StatusReport(
        charger_id=charger_id,
        evse=evse_ref(p["evseId"], p["connectorId"]),
        status=ConnectorStatus(p["connectorStatus"]),
        reported_at=timestamp(p["timestamp"]),
    )


def parse_authorize(charger_id: str, p: dict[str, Any]) -> AuthorizationRequest:
    return AuthorizationRequest(charger_id=charger_id, id_token=id_token(p["idToken"]))


def parse_transaction_event(charger_id: str, p: dict[str, Any]) -> TransactionEventReport:
    info = p["transactionInfo"]
    evse = p.get("evse")
    state = info.get("chargingState")
    token = p.get("idToken")
    return TransactionEventReport(
        charger_id=charger_id,
        event_type=TransactionEventType(p["eventType"]),
        transaction_ref=info["transactionId"],
        seq_no=p["seqNo"],
        occurred_at=timestamp(p["timestamp"]),
        trigger_reason=p["triggerReason"],
        evse=evse_ref(evse["id"], evse.get("connectorId")) if evse else None,
        id_token=id_token(token) if token else None,
        charging_state=ChargingState(state) if state else None,
        stopped_reason=info.get("stoppedReason"),
        remote_start_id=info.get("remoteStartId"),
        reservation_id=p.get("reservationId"),
        offline=bool(p.get("offline", False)),
        readings=parse_meter_value_list(p.get("meterValue", []), "meterValue"),
    )


def parse_meter_values(charger_id: str, p: dict[str, Any]) -> MeterValuesReport:
    return MeterValuesReport(
        charger_id=charger_id,
        evse=evse_ref(p["evseId"], None),
        readings=parse_meter_value_list(p["meterValue"], "meterValue"),
    )


def parse_meter_value_list(
    meter_values: list[dict[str, Any]], field: str
) -> tuple[MeterReading, ...]:
    readings: list[MeterReading] = []
    for i, meter_value in enumerate(meter_values):
        sampled_at = timestamp(meter_value["timestamp"], f"{field}/{i}/timestamp")
        for j, sampled in enumerate(meter_value["sampledValue"]):
            readings.append(_reading(sampled, sampled_at, f"{field}/{i}/sampledValue/{j}"))
    return tuple(readings)


def _reading(sampled: dict[str, Any], sampled_at: datetime, where: str) -> MeterReading:
    unit_of_measure = sampled.get("unitOfMeasure") or {}
    unit = unit_of_measure.get("unit", "Wh")
    multiplier = int(unit_of_measure.get("multiplier", 0))
    value = Decimal(str(sampled["value"]))
    if not value.is_finite():
        raise HandlerError(
            RpcError.PROPERTY_CONSTRAINT_VIOLATION,
            f"{where}/value: {sampled['value']} is not finite",
        )
    if abs(multiplier) > _MAX_MULTIPLIER:
        raise HandlerError(
            RpcError.PROPERTY_CONSTRAINT_VIOLATION,
            f"{where}/unitOfMeasure/multiplier: {multiplier} is out of range",
        )
    value, unit = normalize(value, unit, multiplier)
    signed = sampled.get("signedMeterValue")
    return MeterReading(
        sampled_at=sampled_at,
        measurand=sampled.get("measurand", "Energy.Active.Import.Register"),
        value=value,
        unit=unit,
        context=ReadingContext(sampled.get("context", "Sample.Periodic")),
        phase=sampled.get("phase"),
        location=sampled.get("location", "Outlet"),
        signed=SignedMeterValue(
            data=signed["signedMeterData"],
            signing_method=signed.get("signingMethod"),
            encoding_method=signed.get("encodingMethod"),
            public_key=signed.get("publicKey"),
        )
        if signed
        else None,
    )


def parse_report_page(charger_id: str, p: dict[str, Any]) -> InventoryPage:
    """Keep what describes EVSEs and connectors: ``EVSE`` components (Power, SupplyPhases) and
    ``Connector`` components (ConnectorType, SupplyPhases); everything else is configuration."""
    evses: dict[int, dict[str, Any]] = {}
    for item in p.get("reportData", []):
        component = item["component"]
        evse = component.get("evse")
        if evse is None or component["name"] not in ("EVSE", "Connector"):
            continue
        entry = evses.setdefault(evse["id"], {"connectors": {}})
        value = _actual_value(item["variableAttribute"])
        name = item["variable"]["name"]
        if component["name"] == "EVSE":
            if name == "Power" and value is not None:
                entry["max_power_w"] = _int(value)
            elif name == "SupplyPhases" and value is not None:
                entry["supply_phases"] = _int(value)
        else:
            connector = entry["connectors"].setdefault(evse.get("connectorId", 1), {})
            if name == "ConnectorType":
                connector["connector_type"] = value
    return InventoryPage(
        charger_id=charger_id,
        request_id=p["requestId"],
        seq_no=p["seqNo"],
        more_pages=bool(p.get("tbc", False)),
        evses=tuple(
            EvseInventory(
                ocpp_evse_id=evse_id,
                max_power_w=entry.get("max_power_w"),
                supply_phases=entry.get("supply_phases"),
                connectors=tuple(
                    ConnectorInventory(connector_id=cid, connector_type=c.get("connector_type"))
                    for cid, c in sorted(entry["connectors"].items())
                ),
            )
            for evse_id, entry in sorted(evses.items())
            if evse_id > 0
        ),
    )


def _actual_value(attributes: list[dict[str, Any]]) -> str | None:
    """The ``Actual`` value (the default type); ``MaxSet`` when no Actual is reported."""
    by_type = {a.get("type", "Actual"): a.get("value") for a in attributes}
    value = by_type.get("Actual") or by_type.get("MaxSet")
    return value if isinstance(value, str) else None


def _int(value: str) -> int | None:
    try:
        return int(Decimal(value))
    except (InvalidOperation, ValueError):
        return None


def parse_data_transfer(charger_id: str, p: dict[str, Any]) -> DataTransferRequest:
    data = p.get("data")
    return DataTransferRequest(
        charger_id=charger_id,
        vendor_id=p["vendorId"],
        message_id=p.get("messageId"),
        data=data if isinstance(data, str) or data is None else str(data),
    )
