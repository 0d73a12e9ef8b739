"""Outcomes of calls the central system makes to chargers: values, never swallowed errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True, slots=True)
class CallAnswered:
    """The charger answered with a CallResult (its payload, camelCase as on the wire)."""

    payload: dict[str, Any]


@dataclass(frozen=True, kw_only=True, slots=True)
class CallFailed:
    """The charger answered with a CallError."""

    error_code: str
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True, slots=True)
class CallTimedOut:
    timeout_s: float


@dataclass(frozen=True, kw_only=True, slots=True)
class ChargerOffline:
    charger_id: str


@dataclass(frozen=True, kw_only=True, slots=True)
class CallInvalid:
    """The charger's answer (or our request) violated the OCPP schema."""

    reason: str


CallOutcome = CallAnswered | CallFailed | CallTimedOut | ChargerOffline | CallInvalid
