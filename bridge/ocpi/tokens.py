"""OCPI 2.2.1 objects of the tokens module (reference section 3.5): the Token an eMSP pushes to
us, its PATCH, and what real-time authorization sends and answers.

Received objects are validated strictly: unknown enum values, over-long strings, a ``uid``
over 36 characters, missing required fields and naive datetimes are refused with the field
named. Resolved ambiguities:

- ``uid`` is a CiString(36): printable ASCII, compared case-insensitively (stored as sent).
- ``language`` is an ISO 639-1 code (two lower-case letters).
- A PATCH may change any field but the key (``country_code``, ``party_id``, ``uid``,
  ``type``); when it repeats a key field, it must equal the stored value.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import StrictBool, StringConstraints

from bridge.ocpi.locations import CiString36, DisplayText, OcpiDateTime, TokenType
from bridge.ocpi.models import CountryCode, OcpiModel, PartyId

__all__ = [
    "TOKEN_KEY_FIELDS",
    "AllowedType",
    "AuthorizationInfo",
    "EnergyContract",
    "LocationReferences",
    "ProfileType",
    "Token",
    "TokenType",
    "WhitelistType",
    "patched_token",
]

_String64 = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]


class WhitelistType(StrEnum):
    ALWAYS = "ALWAYS"
    ALLOWED = "ALLOWED"
    ALLOWED_OFFLINE = "ALLOWED_OFFLINE"
    NEVER = "NEVER"


class AllowedType(StrEnum):
    ALLOWED = "ALLOWED"
    BLOCKED = "BLOCKED"
    EXPIRED = "EXPIRED"
    NO_CREDIT = "NO_CREDIT"
    NOT_ALLOWED = "NOT_ALLOWED"


class ProfileType(StrEnum):
    CHEAP = "CHEAP"
    FAST = "FAST"
    GREEN = "GREEN"
    REGULAR = "REGULAR"


class EnergyContract(OcpiModel):
    supplier_name: _String64
    contract_id: _String64 | None = None


class Token(OcpiModel):
    country_code: CountryCode
    party_id: PartyId
    uid: CiString36
    type: TokenType
    contract_id: CiString36
    visual_number: _String64 | None = None
    issuer: _String64
    group_id: CiString36 | None = None
    valid: StrictBool
    whitelist: WhitelistType
    language: _Language | None = None
    default_profile_type: ProfileType | None = None
    energy_contract: EnergyContract | None = None
    last_updated: OcpiDateTime


TOKEN_KEY_FIELDS = ("country_code", "party_id", "uid", "type")


def patched_token(stored: Token, patch: dict[str, Any]) -> Token:
    """The token after a PATCH (validated as a whole). ``ValueError`` names what is wrong:
    a missing ``last_updated``, a changed key field, or an invalid merged token (pydantic's
    ``ValidationError`` is a ``ValueError``)."""
    if "last_updated" not in patch:
        raise ValueError("a Token PATCH must contain last_updated")
    current = stored.model_dump(mode="json", exclude_none=True)
    for name in TOKEN_KEY_FIELDS:
        if name in patch and not _same_key_value(name, patch[name], current[name]):
            raise ValueError(f"{name} cannot be changed by a PATCH ({patch[name]!r})")
    merged = {**current, **{k: v for k, v in patch.items() if k not in TOKEN_KEY_FIELDS}}
    merged = {k: v for k, v in merged.items() if v is not None}
    return Token.model_validate(merged)


def _same_key_value(name: str, given: Any, stored: str) -> bool:
    if not isinstance(given, str):
        return False
    return given == stored if name == "type" else given.upper() == stored.upper()


class LocationReferences(OcpiModel):
    location_id: CiString36
    evse_uids: list[CiString36] | None = None


class AuthorizationInfo(OcpiModel):
    allowed: AllowedType
    token: Token
    location: LocationReferences | None = None
    authorization_reference: CiString36 | None = None
    info: DisplayText | None = None
