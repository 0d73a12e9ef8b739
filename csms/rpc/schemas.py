"""Validate OCPP payloads against the OCA JSON schemas shipped with the ``ocpp`` package and
turn the first violation into the CallError code the specification names for it.

Each schema is also compiled once into a plain-Python predicate (``schema_check``) that is True
only for payloads jsonschema accepts: a payload it passes returns at once, anything else goes
through jsonschema, which alone decides the error and its code."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from functools import cache
from typing import Any

from jsonschema import Draft4Validator
from jsonschema.exceptions import best_match
from ocpp.messages import get_validator

from csms.domain.model import OcppVersion
from csms.rpc.frames import RpcError
from csms.rpc.schema_check import compile_check

REQUEST, RESPONSE = 2, 3

# OCPP 1.6 schemas with `multipleOf: 0.1`: binary floats fail them (16.7 is 16.699999...),
# so these payloads are validated on Decimal numbers.
_DECIMAL_V16 = {
    (REQUEST, "SetChargingProfile"),
    (REQUEST, "RemoteStartTransaction"),
    (RESPONSE, "GetCompositeSchedule"),
}

_CODES = {
    "type": RpcError.TYPE_CONSTRAINT_VIOLATION,
    "required": RpcError.OCCURRENCE_CONSTRAINT_VIOLATION,
    "minItems": RpcError.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxItems": RpcError.OCCURRENCE_CONSTRAINT_VIOLATION,
    "additionalProperties": RpcError.FORMAT_VIOLATION,
    "enum": RpcError.PROPERTY_CONSTRAINT_VIOLATION,
    "maxLength": RpcError.PROPERTY_CONSTRAINT_VIOLATION,
    "minLength": RpcError.PROPERTY_CONSTRAINT_VIOLATION,
    "pattern": RpcError.PROPERTY_CONSTRAINT_VIOLATION,
    "minimum": RpcError.PROPERTY_CONSTRAINT_VIOLATION,
    "maximum": RpcError.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": RpcError.PROPERTY_CONSTRAINT_VIOLATION,
    "format": RpcError.PROPERTY_CONSTRAINT_VIOLATION,
}


class SchemaViolation(Exception):
    def __init__(self, error: RpcError, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class UnknownSchema(Exception):
    """No schema for this action in this OCPP version."""


@cache
def _validator(
    message_type: int, action: str, version: OcppVersion
) -> tuple[Draft4Validator, Callable[[Any], bool] | None]:
    """The schema's validator and its compiled pre-check (None: always ask jsonschema)."""
    decimal = version is OcppVersion.V16 and (message_type, action) in _DECIMAL_V16
    try:
        validator: Draft4Validator = get_validator(
            message_type, action, version.value, parse_float=Decimal if decimal else float
        )
    except (OSError, ValueError) as exc:
        raise UnknownSchema(f"no schema for {action} in OCPP {version.value}") from exc
    # The pre-check ignores `format`, as jsonschema does when it has no format checker.
    check = compile_check(validator.schema) if validator.format_checker is None else None
    return validator, check


def validate(message_type: int, action: str, payload: dict[str, Any], version: OcppVersion) -> None:
    """Raise ``SchemaViolation`` naming the first problem; ``UnknownSchema`` if none exists."""
    validator, check = _validator(message_type, action, version)
    if version is OcppVersion.V16 and (message_type, action) in _DECIMAL_V16:
        payload = json.loads(json.dumps(payload, default=str), parse_float=Decimal)
    if check is not None and check(payload):
        return
    error = best_match(validator.iter_errors(payload))
    if error is None:
        return
    code = _CODES.get(str(error.validator), RpcError.FORMAT_VIOLATION)
    where = "/".join(str(part) for part in error.absolute_path) or "payload"
    raise SchemaViolation(code, f"{where}: {error.message}"[:255])
