"""Commands as OCPP 1.6 calls, and the charger's answers as ``CommandAnswer`` values.

1.6 knows connectors, not EVSEs: connectorId N is EVSE N (``evse_id``), 0 the whole charger.
Transaction ids are integers; idTags at most 20 characters (the caller passes an alias for a
longer token). Limits carry one decimal (the schema's ``multipleOf 0.1``).
"""

from __future__ import annotations

from typing import Any

from csms.clock import format_ocpp_datetime, parse_ocpp_datetime
from csms.domain.commands import (
    CancelReservation,
    ChargerCommand,
    ClearChargingLimit,
    CommandAnswer,
    CommandStatus,
    CompositeSchedule,
    GetCompositeSchedule,
    Reserve,
    SetChargingLimit,
    StartCharging,
    StopCharging,
    Unbuildable,
    Unlock,
)
from csms.rpc.schedules import read_schedule, schedule_payload

Payload = dict[str, Any]


def build_command(command: ChargerCommand) -> tuple[str, Payload]:
    """The 1.6 action and request payload for ``command``."""
    match command:
        case StartCharging():
            payload: Payload = {"idTag": _id_tag(command.id_token.value)}
            if command.evse_id is not None:
                payload["connectorId"] = command.evse_id
            return "RemoteStartTransaction", payload
        case StopCharging():
            return "RemoteStopTransaction", {"transactionId": _tx_id(command.transaction_ref)}
        case Reserve():
            payload = {
                "connectorId": command.evse_id or 0,
                "expiryDate": format_ocpp_datetime(command.expires_at),
                "idTag": _id_tag(command.id_token.value),
                "reservationId": command.reservation_id,
            }
            if command.group_id is not None and len(command.group_id) <= 20:
                payload["parentIdTag"] = command.group_id
            return "ReserveNow", payload
        case CancelReservation():
            return "CancelReservation", {"reservationId": command.reservation_id}
        case Unlock():
            return "UnlockConnector", {"connectorId": command.evse_id}
        case SetChargingLimit():
            limit = command.limit
            profile: Payload = {
                "chargingProfileId": limit.profile_id,
                "transactionId": _tx_id(limit.transaction_ref),
                "stackLevel": limit.stack_level,
                "chargingProfilePurpose": "TxProfile",
                "chargingProfileKind": "Absolute" if limit.schedule.starts_at else "Relative",
                "chargingSchedule": schedule_payload(limit.schedule),
            }
            return "SetChargingProfile", {
                "connectorId": command.evse_id,
                "csChargingProfiles": profile,
            }
        case GetCompositeSchedule():
            payload = {"connectorId": command.evse_id, "duration": command.duration_s}
            if command.rate_unit is not None:
                payload["chargingRateUnit"] = command.rate_unit.value
            return "GetCompositeSchedule", payload
        case ClearChargingLimit():
            return "ClearChargingProfile", {"id": command.profile_id}


_STATUSES = {
    "Accepted": CommandStatus.ACCEPTED,
    "Rejected": CommandStatus.REJECTED,
    "Occupied": CommandStatus.OCCUPIED,
    "Faulted": CommandStatus.FAULTED,
    "Unavailable": CommandStatus.UNAVAILABLE,
    "Unknown": CommandStatus.UNKNOWN,
    "Unlocked": CommandStatus.ACCEPTED,
    "UnlockFailed": CommandStatus.UNLOCK_FAILED,
    "NotSupported": CommandStatus.NOT_SUPPORTED,
}


def parse_answer(command: ChargerCommand, payload: Payload) -> CommandAnswer:
    """The charger's (schema-valid) answer to ``command``."""
    raw = str(payload.get("status", ""))
    status = _STATUSES.get(raw, CommandStatus.FAILED)
    if isinstance(command, CancelReservation) and status is CommandStatus.REJECTED:
        status = CommandStatus.UNKNOWN  # 1.6 rejects a reservation id it does not have
    if isinstance(command, GetCompositeSchedule) and status is CommandStatus.ACCEPTED:
        return _composite(command, payload)
    return CommandAnswer(status=status, detail=f"charger answered {raw}")


def _composite(command: GetCompositeSchedule, payload: Payload) -> CommandAnswer:
    schedule = payload.get("chargingSchedule")
    start = payload.get("scheduleStart")
    if not isinstance(schedule, dict) or start is None:
        return CommandAnswer(
            status=CommandStatus.FAILED, detail="Accepted without scheduleStart/chargingSchedule"
        )
    try:
        starts_at = parse_ocpp_datetime(str(start))
    except ValueError:
        return CommandAnswer(status=CommandStatus.FAILED, detail=f"bad scheduleStart {start!r}")
    return CommandAnswer(
        status=CommandStatus.ACCEPTED,
        detail="charger answered Accepted",
        schedule=CompositeSchedule(
            evse_id=int(payload.get("connectorId", command.evse_id)),
            starts_at=starts_at,
            schedule=read_schedule(schedule),
        ),
    )


def _id_tag(value: str) -> str:
    if len(value) > 20:
        raise Unbuildable(f"idTag {value!r} is longer than 20 characters")
    return value


def _tx_id(transaction_ref: str) -> int:
    try:
        return int(transaction_ref)
    except ValueError:
        raise Unbuildable(f"{transaction_ref!r} is not an OCPP 1.6 transaction id") from None
