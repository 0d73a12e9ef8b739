"""Pure tests of OCPP-J frame parsing, error spelling and schema-violation codes."""

from __future__ import annotations

import pytest

from csms.domain.model import OcppVersion
from csms.rpc.frames import (
    Call,
    CallError,
    CallResult,
    FrameError,
    RpcError,
    UnsolicitedResponse,
    code_for,
    encode_error,
    parse_frame,
)
from csms.rpc.schemas import REQUEST, RESPONSE, SchemaViolation, UnknownSchema, validate


def test_call_result_and_error_frames_are_parsed():
    assert parse_frame('[2,"a","Heartbeat",{}]') == Call("a", "Heartbeat", {})
    assert parse_frame('[3,"b",{"x":1}]') == CallResult("b", {"x": 1})
    assert parse_frame('[4,"c","InternalError","boom",{"k":1}]') == CallError(
        "c", "InternalError", "boom", {"k": 1}
    )


@pytest.mark.parametrize(
    ("text", "error", "unique_id"),
    [
        ("nope", RpcError.RPC_FRAMEWORK_ERROR, "-1"),
        ("[]", RpcError.RPC_FRAMEWORK_ERROR, "-1"),
        ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', RpcError.RPC_FRAMEWORK_ERROR, "-1"),
        ('[2,"a","Heartbeat",{},1]', RpcError.FORMAT_VIOLATION, "a"),
        ('[9,"a"]', RpcError.MESSAGE_TYPE_NOT_SUPPORTED, "a"),
    ],
)
def test_bad_frames_name_the_error_and_the_id_when_readable(text, error, unique_id):
    with pytest.raises(FrameError) as exc:
        parse_frame(text)
    assert (exc.value.error, exc.value.unique_id) == (error, unique_id)


def test_malformed_responses_are_not_answered():
    with pytest.raises(UnsolicitedResponse):
        parse_frame('[3,"a"]')
    with pytest.raises(UnsolicitedResponse):
        parse_frame('[4,"a"]')


@pytest.mark.parametrize(
    ("error", "v16", "v201"),
    [
        (RpcError.FORMAT_VIOLATION, "FormationViolation", "FormatViolation"),
        (
            RpcError.OCCURRENCE_CONSTRAINT_VIOLATION,
            "OccurenceConstraintViolation",
            "OccurrenceConstraintViolation",
        ),
        (RpcError.RPC_FRAMEWORK_ERROR, "FormationViolation", "RpcFrameworkError"),
        (RpcError.MESSAGE_TYPE_NOT_SUPPORTED, "FormationViolation", "MessageTypeNotSupported"),
        (RpcError.NOT_IMPLEMENTED, "NotImplemented", "NotImplemented"),
    ],
)
def test_error_codes_are_spelled_per_ocpp_version(error, v16, v201):
    assert code_for(error, OcppVersion.V16) == v16
    assert code_for(error, OcppVersion.V201) == v201


def test_error_description_is_capped_at_255_characters():
    text = encode_error(CallError("a", "GenericError", "x" * 300))
    assert '"' + "x" * 255 + '"' in text
    assert "x" * 256 not in text


def test_decimal_limits_pass_the_v16_multiple_of_rule():
    payload = {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.7}],
            },
        },
    }
    validate(REQUEST, "SetChargingProfile", payload, OcppVersion.V16)


def test_unknown_schema_is_reported():
    with pytest.raises(UnknownSchema):
        validate(RESPONSE, "FlyToTheMoon", {}, OcppVersion.V16)


def test_enum_violation_is_a_property_constraint_violation():
    with pytest.raises(SchemaViolation) as exc:
        validate(REQUEST, "Reset", {"type": "Sideways"}, OcppVersion.V16)
    assert exc.value.error is RpcError.PROPERTY_CONSTRAINT_VIOLATION
    assert exc.value.description.startswith("type:")
