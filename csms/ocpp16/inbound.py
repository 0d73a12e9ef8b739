"""Parse OCPP 1.6 payloads (camelCase, already schema-valid) into domain requests, and the
answers to our own calls into values.

Semantic problems the schema cannot catch (a timestamp that is not a date-time, a Raw meter
value that is not a number) raise ``HandlerError`` with the CallError code to answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from csms.clock import parse_ocpp_datetime
from csms.domain.model import (
    WHOLE_CHARGER,
    ConnectorStatus,
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
    MeterValuesReport,
    NotificationReport,
    StartTransactionRequest,
    StatusReport,
    StopTransactionRequest,
)
from csms.domain.units import normalize
from csms.rpc.connection import HandlerError
from csms.rpc.frames import RpcError

Clock = Callable[[], datetime]

# The 1.6 schema defaults `unit` to Wh whatever the measurand; chargers that omit it for
# power, current or SoC mean the measurand's natural unit.
_NATURAL_UNIT = {
    "Power": "W",
    "Current": "A",
    "Voltage": "V",
    "SoC": "Percent",
    "Frequency": "Hertz",
    "Temperature": "Celsius",
    "RPM": "RPM",
}


def evse_of(connector_id: int) -> EvseRef:
    """1.6 connectorId N is EVSE N with a single connector; 0 is the whole charger."""
    if connector_id == 0:
        return WHOLE_CHARGER
    return EvseRef(ocpp_evse_id=connector_id, connector_id=1)


def id_token(id_tag: str) -> IdToken:
    return IdToken(value=id_tag, kind=IdTokenKind.ISO14443)


def timestamp(value: str | None, clock: Clock, field: str = "timestamp") -> datetime:
    if value is None:
        return clock()
    try:
        return parse_ocpp_datetime(value)
    except ValueError as exc:
        raise HandlerError(
            RpcError.PROPERTY_CONSTRAINT_VIOLATION, f"{field}: {value!r} is not a date-time"
        ) from exc


def parse_boot(charger_id: str, p: dict[str, Any]) -> BootRequest:
    return BootRequest(
        charger_id=charger_id,
        ocpp_version=OcppVersion.V16,
        identity=ChargerIdentity(
            vendor=p["chargePointVendor"],
            model=p["chargePointModel"],
            serial_number=p.get("chargePointSerialNumber") or p.get("chargeBoxSerialNumber"),
            firmware_version=p.get("firmwareVersion"),
            meter_type=p.get("meterType"),
            meter_serial_number=p.get("meterSerialNumber"),
            iccid=p.get("iccid"),
            imsi=p.get("imsi"),
        ),
    )


def parse_status(charger_id: str, p: dict[str, Any], clock: Clock) -> StatusReport:
    error_code = p["errorCode"]
    return StatusReport(
        charger_id=charger_id,
        evse=evse_of(p["connectorId"]),
        status=ConnectorStatus(p["status"]),
        reported_at=timestamp(p.get("timestamp"), clock),
        error_code=None if error_code == "NoError" else error_code,
        info=p.get("info"),
        vendor_id=p.get("vendorId"),
        vendor_error_code=p.get("vendorErrorCode"),
    )


def parse_authorize(charger_id: str, p: dict[str, Any]) -> AuthorizationRequest:
    return AuthorizationRequest(charger_id=charger_id, id_token=id_token(p["idTag"]))


def parse_start_transaction(
    charger_id: str, p: dict[str, Any], clock: Clock
) -> StartTransactionRequest:
    if p["connectorId"] < 1:
        raise HandlerError(
            RpcError.PROPERTY_CONSTRAINT_VIOLATION,
            "connectorId: a transaction needs a connector > 0",
        )
    return StartTransactionRequest(
        charger_id=charger_id,
        evse=evse_of(p["connectorId"]),
        id_token=id_token(p["idTag"]),
        meter_start_wh=p["meterStart"],
        started_at=timestamp(p["timestamp"], clock),
        reservation_id=p.get("reservationId"),
    )


def parse_meter_values(charger_id: str, p: dict[str, Any], clock: Clock) -> MeterValuesReport:
    transaction_id = p.get("transactionId")
    return MeterValuesReport(
        charger_id=charger_id,
        evse=evse_of(p["connectorId"]),
        transaction_ref=str(transaction_id) if transaction_id is not None else None,
        readings=parse_meter_value_list(p["meterValue"], clock, "meterValue"),
    )


def parse_stop_transaction(
    charger_id: str, p: dict[str, Any], clock: Clock
) -> StopTransactionRequest:
    id_tag = p.get("idTag")
    return StopTransactionRequest(
        charger_id=charger_id,
        transaction_ref=str(p["transactionId"]),
        meter_stop_wh=p["meterStop"],
        ended_at=timestamp(p["timestamp"], clock),
        reason=p.get("reason", "Local"),
        id_token=id_token(id_tag) if id_tag else None,
        readings=parse_meter_value_list(p.get("transactionData", []), clock, "transactionData"),
    )


def parse_meter_value_list(
    meter_values: list[dict[str, Any]], clock: Clock, field: str
) -> tuple[MeterReading, ...]:
    readings: list[MeterReading] = []
    for i, meter_value in enumerate(meter_values):
        sampled_at = timestamp(meter_value["timestamp"], clock, f"{field}/{i}/timestamp")
        for j, sampled in enumerate(meter_value["sampledValue"]):
            readings.append(_reading(sampled, sampled_at, f"{field}/{i}/sampledValue/{j}"))
    return tuple(readings)


def _reading(sampled: dict[str, Any], sampled_at: datetime, where: str) -> MeterReading:
    measurand = sampled.get("measurand", "Energy.Active.Import.Register")
    unit = sampled.get("unit") or _NATURAL_UNIT.get(measurand.split(".")[0], "Wh")
    context = ReadingContext(sampled.get("context", "Sample.Periodic"))
    location = sampled.get("location", "Outlet")
    phase = sampled.get("phase")
    raw = sampled["value"]
    if sampled.get("format") == "SignedData":
        return MeterReading(
            sampled_at=sampled_at,
            measurand=measurand,
            value=None,
            unit=unit,
            context=context,
            phase=phase,
            location=location,
            signed=SignedMeterValue(data=raw),
        )
    try:
        value = Decimal(raw.strip())
        if not value.is_finite():
            raise InvalidOperation
    except InvalidOperation as exc:
        raise HandlerError(
            RpcError.PROPERTY_CONSTRAINT_VIOLATION, f"{where}/value: {raw!r} is not a number"
        ) from exc
    value, unit = normalize(value, unit)
    return MeterReading(
        sampled_at=sampled_at,
        measurand=measurand,
        value=value,
        unit=unit,
        context=context,
        phase=phase,
        location=location,
    )


def parse_data_transfer(charger_id: str, p: dict[str, Any]) -> DataTransferRequest:
    return DataTransferRequest(
        charger_id=charger_id,
        vendor_id=p["vendorId"],
        message_id=p.get("messageId"),
        data=p.get("data"),
    )


def parse_notification(
    charger_id: str, kind: str, p: dict[str, Any], clock: Clock
) -> NotificationReport:
    return NotificationReport(
        charger_id=charger_id, kind=kind, status=p["status"], reported_at=clock()
    )


NUMBER_OF_CONNECTORS = "NumberOfConnectors"
MAX_CONNECTORS = 100
"""More than this is a charger bug, not an inventory: it would fill the database with EVSEs."""
_INTEGER = re.compile(r"^\s*[+-]?[0-9]+\s*$")


@dataclass(frozen=True, kw_only=True, slots=True)
class Unusable:
    """Why an answer to one of our calls cannot be used (an expected outcome, not an error)."""

    reason: str


def parse_connector_count(p: dict[str, Any]) -> int | Unusable:
    """``NumberOfConnectors`` from a GetConfiguration answer (1.6 values are strings)."""
    if NUMBER_OF_CONNECTORS in p.get("unknownKey", ()):
        return Unusable(reason=f"{NUMBER_OF_CONNECTORS} is an unknown key")
    values = [
        entry.get("value")
        for entry in p.get("configurationKey", ())
        if entry["key"] == NUMBER_OF_CONNECTORS
    ]
    if not values:
        return Unusable(reason=f"{NUMBER_OF_CONNECTORS} is missing from the answer")
    raw = values[0]
    if raw is None or not _INTEGER.match(raw):
        return Unusable(reason=f"{NUMBER_OF_CONNECTORS} {raw!r} is not an integer")
    count = int(raw)
    if not 1 <= count <= MAX_CONNECTORS:
        return Unusable(reason=f"{NUMBER_OF_CONNECTORS} {count} is not in 1..{MAX_CONNECTORS}")
    return count
