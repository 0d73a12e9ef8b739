"""OCPI transport primitives: DateTime, the ``Authorization: Token`` value, status codes and
the response envelope (reference sections 1.3-1.5)."""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import uuid
from datetime import UTC, datetime
from enum import IntEnum
from typing import Any

from pydantic import BaseModel


class OcpiStatus(IntEnum):
    SUCCESS = 1000
    CLIENT_ERROR = 2000
    INVALID_PARAMETERS = 2001
    NOT_ENOUGH_INFORMATION = 2002
    UNKNOWN_LOCATION = 2003
    UNKNOWN_TOKEN = 2004
    SERVER_ERROR = 3000
    CLIENT_API_UNUSABLE = 3001
    UNSUPPORTED_VERSION = 3002
    NO_MATCHING_ENDPOINTS = 3003


VERSION = "2.2.1"

# Printable ASCII without space (U+0021-U+007E), at most 64 characters.
TOKEN_PATTERN = r"^[\x21-\x7e]{1,64}$"


def format_datetime(value: datetime) -> str:
    """``2024-01-31T12:00:00.123Z``: UTC, ``Z``, millisecond precision (24 characters; OCPI
    DateTime is string(25), which Python's ``isoformat()`` overflows)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime")
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_datetime(value: str) -> datetime:
    """RFC 3339 into aware UTC; a missing zone means UTC (OCPI 2.2.1 section 16.2)."""
    text = value.strip()
    if not text or len(text) > 35:
        raise ValueError(f"not an OCPI DateTime: {value!r}")
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def authorization_value(token: str, *, encode: bool = True) -> str:
    """The ``Authorization`` header we send: ``Token <base64(token)>`` (2.2.1), or the raw token
    for a peer configured so."""
    if not encode:
        return f"Token {token}"
    return "Token " + base64.b64encode(token.encode()).decode()


def token_candidates(header: str | None) -> list[str]:
    """The credentials tokens an ``Authorization`` header may carry: the value as sent, then
    its Base64 decoding when it is valid Base64 of printable ASCII. Empty when the header is
    missing or not of the ``Token`` scheme."""
    if not header:
        return []
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() != "token" or not value:
        return []
    candidates = [value]
    try:
        decoded = base64.b64decode(value, validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return candidates
    if decoded and decoded.isprintable() and " " not in decoded and decoded != value:
        candidates.append(decoded)
    return candidates


# ``X-Request-ID`` / ``X-Correlation-ID``: OCPI asks for a unique string and advises a UUID.
# A random version 4 UUID drawn once per process, whose last 48 bits (the node field) count
# the requests: still UUID-shaped and unique (the 74 random bits tell processes apart), without
# a ``urandom`` call and a ``UUID`` object per request.
_REQUEST_ID_PREFIX = str(uuid.uuid4())[:24]
_REQUEST_IDS = itertools.count(int(uuid.uuid4().hex[:12], 16))


def new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_REQUEST_IDS) & 0xFFFF_FFFF_FFFF:012x}"


def envelope_json(
    status: int,
    *,
    data: BaseModel | list[BaseModel] | list[str] | None = None,
    raw_data: Any = None,
    message: str | None = None,
    timestamp: datetime,
) -> bytes:
    """Serialize the response envelope. ``data`` models are dumped without ``None`` fields
    (OCPI omits absent optionals), ``str`` items of a ``data`` list are JSON already (stored
    documents); ``raw_data`` is for plain JSON values."""
    parts: list[str] = []
    if data is not None:
        if isinstance(data, list):
            items = ",".join(
                item if isinstance(item, str) else item.model_dump_json(exclude_none=True)
                for item in data
            )
            parts.append(f'"data":[{items}]')
        else:
            parts.append('"data":' + data.model_dump_json(exclude_none=True))
    elif raw_data is not None:
        parts.append('"data":' + json.dumps(raw_data, separators=(",", ":")))
    parts.append(f'"status_code":{int(status)}')
    if message is not None:
        parts.append('"status_message":' + json.dumps(message))
    parts.append('"timestamp":' + json.dumps(format_datetime(timestamp)))
    return ("{" + ",".join(parts) + "}").encode()
