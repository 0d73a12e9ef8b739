"""OCPI 2.2.1 Commands module objects (reference 3.6): the eMSP's command bodies, the CPO's
synchronous CommandResponse and asynchronous CommandResult."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, NonNegativeInt

from bridge.ocpi.locations import CiString36, DisplayText, OcpiDateTime
from bridge.ocpi.models import OcpiModel, Url
from bridge.ocpi.tokens import Token

__all__ = [
    "CancelReservation",
    "CommandResponse",
    "CommandResponseType",
    "CommandResult",
    "CommandResultType",
    "CommandType",
    "ReserveNow",
    "StartSession",
    "StopSession",
    "UnlockConnector",
]


class CommandType(StrEnum):
    CANCEL_RESERVATION = "CANCEL_RESERVATION"
    RESERVE_NOW = "RESERVE_NOW"
    START_SESSION = "START_SESSION"
    STOP_SESSION = "STOP_SESSION"
    UNLOCK_CONNECTOR = "UNLOCK_CONNECTOR"


class CommandResponseType(StrEnum):
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    ACCEPTED = "ACCEPTED"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class CommandResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    CANCELED_RESERVATION = "CANCELED_RESERVATION"
    EVSE_OCCUPIED = "EVSE_OCCUPIED"
    EVSE_INOPERATIVE = "EVSE_INOPERATIVE"
    FAILED = "FAILED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TIMEOUT = "TIMEOUT"
    UNKNOWN_RESERVATION = "UNKNOWN_RESERVATION"


class StartSession(OcpiModel):
    response_url: Url
    token: Token
    location_id: CiString36
    evse_uid: CiString36 | None = None
    connector_id: CiString36 | None = None
    authorization_reference: CiString36 | None = None


class StopSession(OcpiModel):
    response_url: Url
    session_id: CiString36


class ReserveNow(OcpiModel):
    response_url: Url
    token: Token
    expiry_date: OcpiDateTime
    reservation_id: CiString36
    location_id: CiString36
    evse_uid: CiString36 | None = None
    authorization_reference: CiString36 | None = None


class CancelReservation(OcpiModel):
    response_url: Url
    reservation_id: CiString36


class UnlockConnector(OcpiModel):
    response_url: Url
    location_id: CiString36
    evse_uid: CiString36
    connector_id: CiString36


CommandBody = StartSession | StopSession | ReserveNow | CancelReservation | UnlockConnector

BODIES: dict[CommandType, type[CommandBody]] = {
    CommandType.START_SESSION: StartSession,
    CommandType.STOP_SESSION: StopSession,
    CommandType.RESERVE_NOW: ReserveNow,
    CommandType.CANCEL_RESERVATION: CancelReservation,
    CommandType.UNLOCK_CONNECTOR: UnlockConnector,
}


class CommandResponse(OcpiModel):
    result: CommandResponseType
    timeout: NonNegativeInt
    message: list[DisplayText] = Field(default_factory=list)


class CommandResult(OcpiModel):
    result: CommandResultType
    message: list[DisplayText] = Field(default_factory=list)
