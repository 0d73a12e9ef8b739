"""OCPI 2.2.1 objects of the versions and credentials modules (pydantic, strict on input:
unknown enum values, over-long strings and missing required fields are refused)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from bridge.ocpi.wire import TOKEN_PATTERN

Url = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=255)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{2}$")]
PartyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{3}$")]
CredentialsToken = Annotated[str, StringConstraints(pattern=TOKEN_PATTERN)]


class ModuleID(StrEnum):
    CDRS = "cdrs"
    CHARGING_PROFILES = "chargingprofiles"
    COMMANDS = "commands"
    CREDENTIALS = "credentials"
    HUB_CLIENT_INFO = "hubclientinfo"
    LOCATIONS = "locations"
    SESSIONS = "sessions"
    TARIFFS = "tariffs"
    TOKENS = "tokens"


class InterfaceRole(StrEnum):
    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


class Role(StrEnum):
    CPO = "CPO"
    EMSP = "EMSP"
    HUB = "HUB"
    NAP = "NAP"
    NSP = "NSP"
    OTHER = "OTHER"
    SCSP = "SCSP"


class ImageCategory(StrEnum):
    CHARGER = "CHARGER"
    ENTRANCE = "ENTRANCE"
    LOCATION = "LOCATION"
    NETWORK = "NETWORK"
    OPERATOR = "OPERATOR"
    OTHER = "OTHER"
    OWNER = "OWNER"


class OcpiModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Version(OcpiModel):
    # Peers may list versions we do not know (e.g. "2.3"): kept as text, matched exactly.
    version: Annotated[str, StringConstraints(min_length=1, max_length=10)]
    url: Url


class Endpoint(OcpiModel):
    # Custom modules (prefixed with country and party) are allowed: kept as text.
    identifier: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    role: InterfaceRole
    url: Url


class VersionDetails(OcpiModel):
    version: Annotated[str, StringConstraints(min_length=1, max_length=10)]
    endpoints: list[Endpoint] = Field(min_length=1)


class Image(OcpiModel):
    url: Url
    thumbnail: Url | None = None
    category: ImageCategory
    type: Annotated[str, StringConstraints(min_length=1, max_length=4)]
    width: Annotated[int, Field(ge=0, le=99999)] | None = None
    height: Annotated[int, Field(ge=0, le=99999)] | None = None


class BusinessDetails(OcpiModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    website: Url | None = None
    logo: Image | None = None


class CredentialsRole(OcpiModel):
    role: Role
    business_details: BusinessDetails
    party_id: PartyId
    country_code: CountryCode

    def key(self) -> tuple[str, str, str]:
        """Identity of the role: case-insensitive country and party (CiString)."""
        return (self.role.value, self.country_code.upper(), self.party_id.upper())


class Credentials(OcpiModel):
    token: CredentialsToken
    url: Url
    roles: list[CredentialsRole] = Field(min_length=1)


def validation_details(exc: ValidationError, limit: int = 10) -> str:
    """``field.path: message; ...`` for the first ``limit`` problems of a received object."""
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors()[:limit]
    )
