"""OCPI 2.2.1 wire rules shared by the simulator's server and client: the response envelope,
DateTime text, the ``Authorization: Token <base64>`` header, routing headers and JSON with
``Decimal`` numbers."""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

VERSION: Final = "2.2.1"

# Header names (HTTP header names are case-insensitive; these are the spec's spelling).
AUTHORIZATION: Final = "Authorization"
X_REQUEST_ID: Final = "X-Request-ID"
X_CORRELATION_ID: Final = "X-Correlation-ID"
FROM_COUNTRY: Final = "OCPI-from-country-code"
FROM_PARTY: Final = "OCPI-from-party-id"
TO_COUNTRY: Final = "OCPI-to-country-code"
TO_PARTY: Final = "OCPI-to-party-id"
X_TOTAL_COUNT: Final = "X-Total-Count"
X_LIMIT: Final = "X-Limit"
LINK: Final = "Link"
LOCATION: Final = "Location"


class StatusCode:
    """OCPI ``status_code`` values used by the simulator."""

    SUCCESS: Final = 1000
    CLIENT_ERROR: Final = 2000
    INVALID_PARAMETERS: Final = 2001
    NOT_ENOUGH_INFORMATION: Final = 2002
    UNKNOWN_LOCATION: Final = 2003
    UNKNOWN_TOKEN: Final = 2004
    SERVER_ERROR: Final = 3000
    UNABLE_TO_USE_CLIENT_API: Final = 3001
    UNSUPPORTED_VERSION: Final = 3002
    NO_MATCHING_ENDPOINTS: Final = 3003


class ModuleID(StrEnum):
    CDRS = "cdrs"
    CHARGINGPROFILES = "chargingprofiles"
    COMMANDS = "commands"
    CREDENTIALS = "credentials"
    HUBCLIENTINFO = "hubclientinfo"
    LOCATIONS = "locations"
    SESSIONS = "sessions"
    TARIFFS = "tariffs"
    TOKENS = "tokens"


class InterfaceRole(StrEnum):
    SENDER = "SENDER"
    RECEIVER = "RECEIVER"


# Modules without routing headers (versions is not a ModuleID but is named so here).
NON_FUNCTIONAL_MODULES: Final = frozenset({"versions", "credentials", "hubclientinfo"})

# --- DateTime ------------------------------------------------------------------------------

DATETIME_MAX_LENGTH: Final = 25
_DATETIME_RE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z?$")


def utc_now() -> datetime:
    return datetime.now(UTC)


def format_datetime(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC (24 characters); whole seconds drop the fraction."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"naive datetime not allowed: {moment!r}")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond // 1000:03d}"
    return text + "Z"


def parse_datetime(text: str) -> datetime:
    """Parse an OCPI DateTime: RFC 3339 in UTC, at most 25 characters, optional fraction,
    ``Z`` or no zone (= UTC). Offsets such as ``+00:00`` are refused: OCPI timestamps are UTC.
    Raises ``ValueError`` with a readable reason."""
    if len(text) > DATETIME_MAX_LENGTH:
        raise ValueError(f"DateTime longer than {DATETIME_MAX_LENGTH} characters: {text!r}")
    if not _DATETIME_RE.match(text):
        raise ValueError(f"not an OCPI DateTime (UTC, 'Z' or no zone): {text!r}")
    return datetime.fromisoformat(text.removesuffix("Z")).replace(tzinfo=UTC)


# --- Authorization ---------------------------------------------------------------------------

_TOKEN_RE: Final = re.compile(r"^[\x21-\x7e]{1,64}$")


def is_valid_credentials_token(token: str) -> bool:
    """Printable non-whitespace ASCII (0x21-0x7E), 1 to 64 characters."""
    return bool(_TOKEN_RE.match(token))


def encode_token(token: str) -> str:
    """RFC 4648 base64 (with padding) of the token's UTF-8 bytes."""
    return base64.b64encode(token.encode("utf-8")).decode("ascii")


def authorization_value(token: str, *, encode: bool = True) -> str:
    return f"Token {encode_token(token) if encode else token}"


@dataclass(frozen=True, slots=True)
class PresentedToken:
    """What a client put in ``Authorization``: the value as sent and, when it is valid base64
    of UTF-8 text, the decoded token."""

    raw: str
    decoded: str | None

    def candidates(self) -> list[tuple[str, str]]:
        """(token, encoding) pairs to look up, raw first (see reference 1.3)."""
        found = [(self.raw, "raw")]
        if self.decoded is not None and self.decoded != self.raw:
            found.append((self.decoded, "base64"))
        return found


def parse_authorization(value: str | None) -> PresentedToken | None:
    if not value:
        return None
    scheme, _, rest = value.strip().partition(" ")
    rest = rest.strip()
    if scheme.lower() != "token" or not rest:
        return None
    decoded: str | None
    try:
        decoded = base64.b64decode(rest, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        decoded = None
    return PresentedToken(raw=rest, decoded=decoded)


# --- Request ids and routing ---------------------------------------------------------------


def new_request_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, slots=True)
class Party:
    country_code: str
    party_id: str

    def same(self, country_code: str, party_id: str) -> bool:
        """CiString comparison."""
        return (
            self.country_code.upper() == country_code.upper()
            and self.party_id.upper() == party_id.upper()
        )


def routing_headers(sender: Party, receiver: Party | None) -> dict[str, str]:
    headers = {FROM_COUNTRY: sender.country_code, FROM_PARTY: sender.party_id}
    if receiver is not None:
        headers[TO_COUNTRY] = receiver.country_code
        headers[TO_PARTY] = receiver.party_id
    return headers


def header(headers: Mapping[str, str], name: str) -> str | None:
    """Case-insensitive header lookup on a plain mapping."""
    lowered = name.lower()
    for key, value in headers.items():
        if key.lower() == lowered:
            return value
    return None


# --- JSON and envelope -----------------------------------------------------------------------


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def _json_default(value: object) -> Any:
    if isinstance(value, Decimal):
        # A JSON number; the shortest float repr keeps every realistic 4-decimal amount exact.
        return float(value)
    if isinstance(value, datetime):
        return format_datetime(value)
    if isinstance(value, StrEnum):
        return value.value
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return json.dumps(value, default=_json_default, separators=(",", ":")).encode("utf-8")


def loads(raw: bytes | str) -> Any:
    """Parse JSON with numbers having a fraction or exponent as ``Decimal``; raises
    ``ValueError`` on invalid JSON (including an empty body)."""
    return json.loads(raw, parse_float=Decimal)


def envelope(
    status_code: int,
    status_message: str,
    data: Any = MISSING,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The OCPI response body; ``data`` is left out when ``MISSING``."""
    body: dict[str, Any] = {}
    if data is not MISSING:
        body["data"] = data
    body["status_code"] = status_code
    body["status_message"] = status_message
    body["timestamp"] = format_datetime(now or utc_now())
    return body
