"""OCPI 2.2.1 objects of the chargingprofiles module (reference 3.7): the eMSP's
SetChargingProfile, the CPO's synchronous ChargingProfileResponse and the asynchronous results
(ChargingProfileResult, ActiveChargingProfileResult, ClearProfileResult).

Resolved ambiguities of the specification (what a received ChargingProfile must be):

- ``limit`` and ``min_charging_rate`` are non-negative numbers "with one decimal": any number is
  accepted and rounded half up to 0.1 (``16.65`` -> ``16.7``, ``11000.05`` -> ``11000.1``), as
  OCPP wants them (``multipleOf 0.1``).
- ``charging_profile_period`` is ``*`` in the spec, but an OCPP schedule needs at least one
  period: an empty or missing list is refused. The first ``start_period`` is 0, the others
  strictly increase; at most 1024 periods (the OCPP 2.0.1 limit).
- ``start_period`` and ``duration`` are JSON integers (``>= 0``); ``"60"`` or ``60.0`` is refused.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Annotated

from pydantic import AfterValidator, Field, StrictInt, model_validator

from bridge.ocpi.locations import OcpiDateTime
from bridge.ocpi.models import OcpiModel, Url
from bridge.ocpi.numbers import OcpiNumber

__all__ = [
    "MAX_PERIODS",
    "ActiveChargingProfile",
    "ActiveChargingProfileResult",
    "ChargingProfile",
    "ChargingProfilePeriod",
    "ChargingProfileResponse",
    "ChargingProfileResponseType",
    "ChargingProfileResult",
    "ChargingProfileResultType",
    "ChargingRateUnit",
    "ClearProfileResult",
    "OneDecimal",
    "SetChargingProfile",
    "one_decimal",
]

MAX_PERIODS = 1024


class ChargingRateUnit(StrEnum):
    W = "W"  # total power of all phases
    A = "A"  # current per phase


class ChargingProfileResponseType(StrEnum):
    ACCEPTED = "ACCEPTED"
    NOT_SUPPORTED = "NOT_SUPPORTED"
    REJECTED = "REJECTED"
    TOO_OFTEN = "TOO_OFTEN"
    UNKNOWN_SESSION = "UNKNOWN_SESSION"


class ChargingProfileResultType(StrEnum):
    ACCEPTED = "ACCEPTED"
    REJECTED = "REJECTED"
    UNKNOWN = "UNKNOWN"


def one_decimal(value: Decimal) -> Decimal:
    """A limit with one decimal, rounded half up (``16.65`` -> ``16.7``)."""
    return value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _one_decimal_non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return one_decimal(value)


OneDecimal = Annotated[OcpiNumber, AfterValidator(_one_decimal_non_negative)]
"""A non-negative OCPI number rounded half up to one decimal."""

NonNegativeInt = Annotated[StrictInt, Field(ge=0)]


class ChargingProfilePeriod(OcpiModel):
    start_period: NonNegativeInt
    """Seconds from the start of the profile."""
    limit: OneDecimal


class ChargingProfile(OcpiModel):
    start_date_time: OcpiDateTime | None = None
    """Absent: the periods are relative to the start of charging."""
    duration: NonNegativeInt | None = None
    charging_rate_unit: ChargingRateUnit
    min_charging_rate: OneDecimal | None = None
    charging_profile_period: list[ChargingProfilePeriod] = Field(
        min_length=1, max_length=MAX_PERIODS
    )

    @model_validator(mode="after")
    def _periods_in_order(self) -> ChargingProfile:
        starts = [p.start_period for p in self.charging_profile_period]
        if starts[0] != 0:
            raise ValueError("the first charging_profile_period must have start_period 0")
        if any(later <= earlier for earlier, later in pairwise(starts)):
            raise ValueError("charging_profile_period start_period values must increase")
        return self


class SetChargingProfile(OcpiModel):
    charging_profile: ChargingProfile
    response_url: Url


class ChargingProfileResponse(OcpiModel):
    result: ChargingProfileResponseType
    timeout: NonNegativeInt
    """Seconds the eMSP should wait for the asynchronous result."""


class ActiveChargingProfile(OcpiModel):
    start_date_time: OcpiDateTime
    """When the profile was computed; its periods are relative to it."""
    charging_profile: ChargingProfile


class ActiveChargingProfileResult(OcpiModel):
    result: ChargingProfileResultType
    profile: ActiveChargingProfile | None = None

    @model_validator(mode="after")
    def _profile_when_accepted(self) -> ActiveChargingProfileResult:
        accepted = self.result is ChargingProfileResultType.ACCEPTED
        if accepted != (self.profile is not None):
            raise ValueError("profile is given exactly when the result is ACCEPTED")
        return self


class ChargingProfileResult(OcpiModel):
    result: ChargingProfileResultType


class ClearProfileResult(OcpiModel):
    result: ChargingProfileResultType
