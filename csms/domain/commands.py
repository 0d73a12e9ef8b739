"""Commands the central system sends to chargers, and their answers (version-neutral).

A command names what is wanted (start charging for this token on that EVSE, stop that
transaction, reserve, unlock, limit power); each OCPP version adapter turns it into its own
call (1.6 ``RemoteStartTransaction``, 2.0.1 ``RequestStartTransaction``, ...) and the charger's
answer, or its absence, back into a ``CommandAnswer``. Every failure is an answer value:
``OFFLINE``, ``TIMEOUT``, ``NOT_SUPPORTED`` (CallError NotSupported / NotImplemented),
``FAILED`` (any other CallError, or an answer that breaks the schema).

The commands are plain values so that a multi-node deployment can carry them to the node that
holds the charger's connection.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum

from csms.domain.model import IdToken
from csms.domain.outcomes import (
    CallAnswered,
    CallFailed,
    CallInvalid,
    CallOutcome,
    CallTimedOut,
    ChargerOffline,
)


class RateUnit(StrEnum):
    """Charging limits in watts (total) or amperes (per phase)."""

    W = "W"
    A = "A"


@dataclass(frozen=True, kw_only=True, slots=True)
class SchedulePeriod:
    start_s: int
    """Seconds from the schedule's start; the first period starts at 0."""
    limit: Decimal
    """In the schedule's unit, one decimal (``tenths`` rounds it)."""
    phases: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Schedule:
    rate_unit: RateUnit
    periods: tuple[SchedulePeriod, ...]
    starts_at: datetime | None = None
    """Absolute start; ``None``: relative to the start of the transaction."""
    duration_s: int | None = None
    min_rate: Decimal | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargingLimit:
    """A transaction's charging profile (OCPP ``TxProfile``): maximum limits, not targets."""

    profile_id: int
    stack_level: int
    transaction_ref: str
    schedule: Schedule


@dataclass(frozen=True, kw_only=True, slots=True)
class CompositeSchedule:
    """What the charger will actually allow on an EVSE, from ``starts_at`` on."""

    evse_id: int
    starts_at: datetime
    schedule: Schedule


@dataclass(frozen=True, kw_only=True, slots=True)
class StartCharging:
    id_token: IdToken
    remote_start_id: int
    """2.0.1 ``remoteStartId``, echoed in the transaction it starts (1.6 has none)."""
    evse_id: int | None = None
    """``None``: the charger chooses (1.6 connectorId = the EVSE number)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class StopCharging:
    transaction_ref: str


@dataclass(frozen=True, kw_only=True, slots=True)
class Reserve:
    reservation_id: int
    expires_at: datetime
    id_token: IdToken
    evse_id: int | None = None
    """``None``: any EVSE of the charger (1.6 connectorId 0)."""
    group_id: str | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CancelReservation:
    reservation_id: int


@dataclass(frozen=True, kw_only=True, slots=True)
class Unlock:
    evse_id: int
    connector_id: int = 1
    """The connector on the EVSE (2.0.1); 1.6 unlocks connectorId = ``evse_id``."""


@dataclass(frozen=True, kw_only=True, slots=True)
class SetChargingLimit:
    evse_id: int
    limit: ChargingLimit


@dataclass(frozen=True, kw_only=True, slots=True)
class GetCompositeSchedule:
    evse_id: int
    duration_s: int
    rate_unit: RateUnit | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class ClearChargingLimit:
    profile_id: int


ChargerCommand = (
    StartCharging
    | StopCharging
    | Reserve
    | CancelReservation
    | Unlock
    | SetChargingLimit
    | GetCompositeSchedule
    | ClearChargingLimit
)


class CommandStatus(StrEnum):
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    OCCUPIED = "Occupied"  # reserve: the EVSE is in use or reserved
    FAULTED = "Faulted"
    UNAVAILABLE = "Unavailable"
    UNKNOWN = "Unknown"  # no such reservation, profile or connector
    UNLOCK_FAILED = "UnlockFailed"
    ONGOING_TRANSACTION = "OngoingTransaction"  # 2.0.1 unlock refused: a transaction runs
    NOT_SUPPORTED = "NotSupported"
    FAILED = "Failed"  # a CallError other than not-supported, or an unusable answer
    TIMEOUT = "Timeout"
    OFFLINE = "Offline"


@dataclass(frozen=True, kw_only=True, slots=True)
class CommandAnswer:
    status: CommandStatus
    detail: str = ""
    transaction_ref: str | None = None
    """2.0.1 start: the transaction already running on the EVSE (cable plugged in first)."""
    schedule: CompositeSchedule | None = None
    extra: dict[str, str] = field(default_factory=dict)


class Unbuildable(ValueError):
    """The command cannot be said in the charger's OCPP version (e.g. a non-integer
    transaction id in 1.6)."""


_NOT_SUPPORTED_CODES = frozenset({"NotSupported", "NotImplemented"})


def answer_to_failure(outcome: CallOutcome) -> CommandAnswer | None:
    """The answer for a call that did not come back with a result; ``None`` when it did."""
    match outcome:
        case CallAnswered():
            return None
        case ChargerOffline():
            return CommandAnswer(status=CommandStatus.OFFLINE, detail="charger not connected")
        case CallTimedOut(timeout_s=timeout_s):
            return CommandAnswer(
                status=CommandStatus.TIMEOUT, detail=f"no answer within {timeout_s:g} s"
            )
        case CallFailed(error_code=code, description=description):
            status = (
                CommandStatus.NOT_SUPPORTED
                if code in _NOT_SUPPORTED_CODES
                else CommandStatus.FAILED
            )
            return CommandAnswer(status=status, detail=f"CallError {code}: {description}")
        case CallInvalid(reason=reason):
            return CommandAnswer(status=CommandStatus.FAILED, detail=reason)


def tenths(value: Decimal) -> Decimal:
    """A limit with one decimal, as OCPP wants it (``multipleOf 0.1``)."""
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
