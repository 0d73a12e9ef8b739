"""Commands as OCPP 2.0.1 calls, and the station's answers as ``CommandAnswer`` values.

2.0.1 addresses EVSEs (``evseId``) and their connectors; transaction ids are strings chosen by
the station; ``remoteStartId`` correlates a RequestStartTransaction with the transaction it
starts. Charging profiles carry one schedule here.
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
    Unlock,
)
from csms.domain.model import IdToken
from csms.rpc.schedules import read_schedule, schedule_payload

Payload = dict[str, Any]


def build_command(command: ChargerCommand) -> tuple[str, Payload]:
    """The 2.0.1 action and request payload for ``command``."""
    match command:
        case StartCharging():
            payload: Payload = {
                "idToken": _id_token(command.id_token),
                "remoteStartId": command.remote_start_id,
            }
            if command.evse_id is not None:
                payload["evseId"] = command.evse_id
            return "RequestStartTransaction", payload
        case StopCharging():
            return "RequestStopTransaction", {"transactionId": command.transaction_ref}
        case Reserve():
            payload = {
                "id": command.reservation_id,
                "expiryDateTime": format_ocpp_datetime(command.expires_at),
                "idToken": _id_token(command.id_token),
            }
            if command.evse_id is not None:
                payload["evseId"] = command.evse_id
            if command.group_id is not None:
                payload["groupIdToken"] = {"idToken": command.group_id, "type": "Central"}
            return "ReserveNow", payload
        case CancelReservation():
            return "CancelReservation", {"reservationId": command.reservation_id}
        case Unlock():
            return "UnlockConnector", {
                "evseId": command.evse_id,
                "connectorId": command.connector_id,
            }
        case SetChargingLimit():
            limit = command.limit
            return "SetChargingProfile", {
                "evseId": command.evse_id,
                "chargingProfile": {
                    "id": limit.profile_id,
                    "stackLevel": limit.stack_level,
                    "chargingProfilePurpose": "TxProfile",
                    "chargingProfileKind": "Absolute" if limit.schedule.starts_at else "Relative",
                    "transactionId": limit.transaction_ref,
                    "chargingSchedule": [
                        {"id": limit.profile_id, **schedule_payload(limit.schedule)}
                    ],
                },
            }
        case GetCompositeSchedule():
            payload = {"evseId": command.evse_id, "duration": command.duration_s}
            if command.rate_unit is not None:
                payload["chargingRateUnit"] = command.rate_unit.value
            return "GetCompositeSchedule", payload
        case ClearChargingLimit():
            return "ClearChargingProfile", {"chargingProfileId": command.profile_id}


_STATUSES = {
    "Accepted": CommandStatus.ACCEPTED,
    "Rejected": CommandStatus.REJECTED,
    "Occupied": CommandStatus.OCCUPIED,
    "Faulted": CommandStatus.FAULTED,
    "Unavailable": CommandStatus.UNAVAILABLE,
    "Unknown": CommandStatus.UNKNOWN,
    "Unlocked": CommandStatus.ACCEPTED,
    "UnlockFailed": CommandStatus.UNLOCK_FAILED,
    "OngoingAuthorizedTransaction": CommandStatus.ONGOING_TRANSACTION,
    "UnknownConnector": CommandStatus.UNKNOWN,
}


def parse_answer(command: ChargerCommand, payload: Payload) -> CommandAnswer:
    """The station's (schema-valid) answer to ``command``."""
    raw = str(payload.get("status", ""))
    status = _STATUSES.get(raw, CommandStatus.FAILED)
    detail = f"station answered {raw}"
    reason = payload.get("statusInfo", {}).get("reasonCode")
    if reason:
        detail += f" ({reason})"
    if isinstance(command, CancelReservation) and status is CommandStatus.REJECTED:
        status = CommandStatus.UNKNOWN  # the station has no such reservation
    if isinstance(command, GetCompositeSchedule) and status is CommandStatus.ACCEPTED:
        return _composite(payload, detail)
    transaction = payload.get("transactionId") if isinstance(command, StartCharging) else None
    return CommandAnswer(status=status, detail=detail, transaction_ref=transaction)


def _composite(payload: Payload, detail: str) -> CommandAnswer:
    raw = payload.get("schedule")
    if not isinstance(raw, dict):
        return CommandAnswer(status=CommandStatus.FAILED, detail="Accepted without a schedule")
    try:
        starts_at = parse_ocpp_datetime(str(raw["scheduleStart"]))
    except ValueError:
        return CommandAnswer(
            status=CommandStatus.FAILED, detail=f"bad scheduleStart {raw['scheduleStart']!r}"
        )
    return CommandAnswer(
        status=CommandStatus.ACCEPTED,
        detail=detail,
        schedule=CompositeSchedule(
            evse_id=int(raw["evseId"]),
            starts_at=starts_at,
            schedule=read_schedule(raw),
        ),
    )


def _id_token(token: IdToken) -> Payload:
    return {"idToken": token.value, "type": token.kind.value}
