"""OCPP-J frames (sans I/O): parse text into Call / CallResult / CallError, encode them back,
and name errors in the spelling of each OCPP version."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from csms.domain.model import OcppVersion

UNREADABLE_ID = "-1"


class RpcError(StrEnum):
    """Version-neutral names of CallError codes; ``code_for`` gives the wire spelling."""

    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    INTERNAL_ERROR = "InternalError"
    PROTOCOL_ERROR = "ProtocolError"
    SECURITY_ERROR = "SecurityError"
    FORMAT_VIOLATION = "FormatViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"
    GENERIC_ERROR = "GenericError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"


# OCPP-J 1.6 spells two codes differently and lacks the 2.0.1 framework codes.
_V16_SPELLING = {
    RpcError.FORMAT_VIOLATION: "FormationViolation",
    RpcError.OCCURRENCE_CONSTRAINT_VIOLATION: "OccurenceConstraintViolation",
    RpcError.RPC_FRAMEWORK_ERROR: "FormationViolation",
    RpcError.MESSAGE_TYPE_NOT_SUPPORTED: "FormationViolation",
}


def code_for(error: RpcError, version: OcppVersion) -> str:
    if version is OcppVersion.V16:
        return _V16_SPELLING.get(error, error.value)
    return error.value


@dataclass(frozen=True, slots=True)
class Call:
    unique_id: str
    action: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallResult:
    unique_id: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    unique_id: str
    error_code: str
    description: str
    details: dict[str, Any] = field(default_factory=dict)


Frame = Call | CallResult | CallError


class FrameError(Exception):
    """A frame that cannot be processed; answered with a CallError carrying ``unique_id``."""

    def __init__(self, error: RpcError, description: str, unique_id: str = UNREADABLE_ID) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.unique_id = unique_id


class UnsolicitedResponse(Exception):
    """A CallResult/CallError that is malformed; there is nobody to answer."""


def parse_frame(text: str) -> Frame:
    try:
        message = json.loads(text)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise FrameError(RpcError.RPC_FRAMEWORK_ERROR, f"not valid JSON: {exc}") from exc
    if not isinstance(message, list) or not message:
        raise FrameError(RpcError.RPC_FRAMEWORK_ERROR, "an OCPP-J message is a JSON array")
    type_id = message[0]
    unique_id = message[1] if len(message) > 1 else None
    if not isinstance(unique_id, str) or not unique_id or len(unique_id) > 36:
        raise FrameError(RpcError.RPC_FRAMEWORK_ERROR, "missing or invalid message id")
    if type_id == 2:
        if len(message) != 4 or not isinstance(message[2], str):
            raise FrameError(
                RpcError.FORMAT_VIOLATION, "a Call is [2, id, action, payload]", unique_id
            )
        if not isinstance(message[3], dict):
            raise FrameError(RpcError.FORMAT_VIOLATION, "the payload is a JSON object", unique_id)
        return Call(unique_id, message[2], message[3])
    if type_id == 3:
        if len(message) != 3 or not isinstance(message[2], dict):
            raise UnsolicitedResponse(f"malformed CallResult {unique_id}")
        return CallResult(unique_id, message[2])
    if type_id == 4:
        if len(message) < 4 or not isinstance(message[2], str):
            raise UnsolicitedResponse(f"malformed CallError {unique_id}")
        details = message[4] if len(message) > 4 and isinstance(message[4], dict) else {}
        description = message[3] if isinstance(message[3], str) else ""
        return CallError(unique_id, message[2], description, details)
    raise FrameError(
        RpcError.MESSAGE_TYPE_NOT_SUPPORTED,
        f"message type id {type_id!r} is not supported",
        unique_id,
    )


def _dumps(value: list[Any]) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def encode_call(call: Call) -> str:
    return _dumps([2, call.unique_id, call.action, call.payload])


def encode_result(result: CallResult) -> str:
    return _dumps([3, result.unique_id, result.payload])


def encode_error(error: CallError) -> str:
    description = error.description[:255]
    return _dumps([4, error.unique_id, error.error_code, description, error.details])
