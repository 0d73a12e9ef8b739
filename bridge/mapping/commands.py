"""Pure rules of the Commands module (reference 3.6, 4.7; design.md section 5): which OCPI
CommandResult a charger's answer gives, which EVSE states refuse a command before the charger
is asked, and the idTag a token is sent to a charger as."""

from __future__ import annotations

from bridge.ocpi.commands import CommandResult, CommandResultType, CommandType
from bridge.ocpi.locations import DisplayText, Status
from bridge.ocpi.models import ModuleID
from bridge.push.outbox import PushRequest
from csms.domain.commands import CommandStatus

IDTAG_MAX = 20  # OCPP 1.6 idTag length

_RESULTS = {
    CommandStatus.ACCEPTED: CommandResultType.ACCEPTED,
    CommandStatus.REJECTED: CommandResultType.REJECTED,
    CommandStatus.OCCUPIED: CommandResultType.EVSE_OCCUPIED,
    CommandStatus.FAULTED: CommandResultType.EVSE_INOPERATIVE,
    CommandStatus.UNAVAILABLE: CommandResultType.EVSE_INOPERATIVE,
    CommandStatus.UNLOCK_FAILED: CommandResultType.FAILED,
    CommandStatus.ONGOING_TRANSACTION: CommandResultType.REJECTED,
    CommandStatus.NOT_SUPPORTED: CommandResultType.NOT_SUPPORTED,
    CommandStatus.FAILED: CommandResultType.FAILED,
    CommandStatus.TIMEOUT: CommandResultType.TIMEOUT,
    CommandStatus.OFFLINE: CommandResultType.FAILED,
}


def command_result(command: CommandType, status: CommandStatus) -> CommandResultType:
    """The CommandResult for the charger's answer: its acceptance of the request, not the
    start of energy transfer (the session itself arrives as a Session push)."""
    if status is CommandStatus.UNKNOWN:
        # No such reservation (CancelReservation) or connector (UnlockConnector).
        if command is CommandType.CANCEL_RESERVATION:
            return CommandResultType.UNKNOWN_RESERVATION
        return CommandResultType.FAILED
    return _RESULTS[status]


# RESERVED is left to the charger: the reservation may be this driver's (or be replaced).
_OCCUPIED = frozenset({Status.CHARGING, Status.BLOCKED})
_INOPERATIVE = frozenset({Status.INOPERATIVE, Status.OUTOFORDER, Status.PLANNED, Status.REMOVED})


def refused_by_status(command: CommandType, status: Status) -> CommandResultType | None:
    """The result of a START_SESSION or RESERVE_NOW on an EVSE whose OCPI status already
    rules it out (the charger is not asked); ``None`` when the charger should decide."""
    if command not in (CommandType.START_SESSION, CommandType.RESERVE_NOW):
        return None
    if status in _OCCUPIED:
        return CommandResultType.EVSE_OCCUPIED
    if status in _INOPERATIVE:
        return CommandResultType.EVSE_INOPERATIVE
    return None


def fits_id_tag(uid: str) -> bool:
    return len(uid) <= IDTAG_MAX


def result_push(
    *, command_id: int, partner_id: int, response_url: str, result: CommandResultType, detail: str
) -> PushRequest:
    """The CommandResult POST to a command's ``response_url``, in the command's order."""
    body = CommandResult(
        result=result, message=[DisplayText(language="en", text=detail[:512] or "-")]
    )
    return PushRequest(
        partner_id=partner_id,
        module=ModuleID.COMMANDS,
        method="POST",
        url=response_url,
        body=body.model_dump(mode="json"),
        ordering_key=f"commands:{command_id}",
    )
