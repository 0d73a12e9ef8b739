"""Pure tests of the 1.6 inbound parsers and outbound builders."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from csms.clock import format_ocpp_datetime, parse_ocpp_datetime
from csms.domain.codec import decode_event, encode_event
from csms.domain.energy import energy_register_wh
from csms.domain.events import MeterValuesSampled, TransactionStarted
from csms.domain.model import (
    WHOLE_CHARGER,
    AuthorizationStatus,
    EvseRef,
    IdToken,
    MeterReading,
    ReadingContext,
)
from csms.domain.requests import AuthorizationDecision
from csms.ocpp16.inbound import parse_meter_values, parse_status
from csms.ocpp16.outbound import build_id_tag_info
from csms.rpc.connection import HandlerError

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def clock() -> datetime:
    return T0


def _mv(*sampled: dict[str, str], ts: str = "2026-01-01T12:00:00Z") -> dict:
    return {
        "connectorId": 2,
        "transactionId": 5,
        "meterValue": [{"timestamp": ts, "sampledValue": list(sampled)}],
    }


@pytest.mark.parametrize(
    ("sampled", "value", "unit"),
    [
        ({"value": "1234"}, Decimal(1234), "Wh"),
        ({"value": "1.5", "unit": "kWh"}, Decimal(1500), "Wh"),
        ({"value": "7.4", "unit": "kW", "measurand": "Power.Active.Import"}, Decimal(7400), "W"),
        ({"value": "16", "measurand": "Current.Import"}, Decimal(16), "A"),
        ({"value": "80", "measurand": "SoC"}, Decimal(80), "Percent"),
        (
            {"value": "2", "unit": "kvarh", "measurand": "Energy.Reactive.Import.Register"},
            Decimal(2000),
            "varh",
        ),
    ],
)
def test_meter_values_are_normalized_to_base_units(sampled, value, unit):
    report = parse_meter_values("CP", _mv(sampled), clock)
    (reading,) = report.readings
    assert (reading.value, reading.unit) == (value, unit)
    assert report.evse == EvseRef(ocpp_evse_id=2, connector_id=1)
    assert report.transaction_ref == "5"


def test_defaults_of_a_bare_sampled_value_follow_the_spec():
    (reading,) = parse_meter_values("CP", _mv({"value": "1"}), clock).readings
    assert reading.measurand == "Energy.Active.Import.Register"
    assert reading.context is ReadingContext.SAMPLE_PERIODIC
    assert reading.location == "Outlet"
    assert reading.phase is None


def test_signed_data_is_kept_verbatim():
    sampled = {"value": "AB12CD", "format": "SignedData", "context": "Transaction.End"}
    (reading,) = parse_meter_values("CP", _mv(sampled), clock).readings
    assert reading.value is None
    assert reading.signed is not None
    assert reading.signed.data == "AB12CD"


def test_timestamp_with_offset_is_converted_to_utc():
    report = parse_meter_values("CP", _mv({"value": "1"}, ts="2026-01-01T14:00:00+02:00"), clock)
    assert report.readings[0].sampled_at == T0


def test_bad_meter_value_names_where_it_is():
    with pytest.raises(HandlerError) as exc:
        parse_meter_values("CP", _mv({"value": "1"}, {"value": "ten"}), clock)
    assert "meterValue/0/sampledValue/1/value" in exc.value.description


def test_connector_zero_is_the_whole_charger():
    report = parse_status(
        "CP", {"connectorId": 0, "errorCode": "NoError", "status": "Unavailable"}, clock
    )
    assert report.evse == WHOLE_CHARGER
    assert report.error_code is None
    assert report.reported_at == T0


def test_energy_register_prefers_the_overall_reading_of_the_latest_sample():
    def r(at_min: int, value: int, phase: str | None = None) -> MeterReading:
        return MeterReading(
            sampled_at=T0.replace(minute=at_min),
            measurand="Energy.Active.Import.Register",
            value=Decimal(value),
            unit="Wh",
            phase=phase,
        )

    assert energy_register_wh([r(1, 100), r(2, 200), r(2, 90, "L1")]) == 200
    assert energy_register_wh([r(2, 90, "L1"), r(2, 95, "L2"), r(1, 500)]) == 185
    assert energy_register_wh([]) is None


@pytest.mark.parametrize(
    ("status", "wire"),
    [
        (AuthorizationStatus.ACCEPTED, "Accepted"),
        (AuthorizationStatus.BLOCKED, "Blocked"),
        (AuthorizationStatus.UNKNOWN, "Invalid"),
        (AuthorizationStatus.NOT_AT_THIS_LOCATION, "Invalid"),
    ],
)
def test_authorization_statuses_map_to_16_values(status, wire):
    info = build_id_tag_info(AuthorizationDecision(status=status, expires_at=T0, group_id="G1"))
    assert info == {"status": wire, "expiryDate": "2026-01-01T12:00:00.000Z", "parentIdTag": "G1"}


def test_parent_id_tag_longer_than_20_characters_is_not_sent():
    info = build_id_tag_info(
        AuthorizationDecision(status=AuthorizationStatus.ACCEPTED, group_id="G" * 21)
    )
    assert "parentIdTag" not in info


@given(st.datetimes(timezones=st.just(UTC)))
def test_ocpp_datetime_round_trips_to_the_millisecond(value):
    text = format_ocpp_datetime(value)
    assert text.endswith("Z")
    assert len(text) == 24
    assert parse_ocpp_datetime(text) == value.replace(microsecond=value.microsecond // 1000 * 1000)


@given(
    st.integers(min_value=0, max_value=10**9),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=0, max_value=10**6),
)
def test_events_round_trip_through_the_codec(meter_start, value):
    started = TransactionStarted(
        charger_id="CP",
        occurred_at=T0,
        transaction_ref="7",
        evse=EvseRef(ocpp_evse_id=1, connector_id=1),
        id_token=IdToken(value="TAG"),
        authorization=AuthorizationStatus.ACCEPTED,
        meter_start_wh=meter_start,
    )
    sampled = MeterValuesSampled(
        charger_id="CP",
        occurred_at=T0,
        evse=EvseRef(ocpp_evse_id=1, connector_id=1),
        transaction_ref=None,
        readings=(MeterReading(sampled_at=T0, measurand="X", value=value, unit="Wh"),),
    )
    for event in (started, sampled):
        assert decode_event(type(event).__name__, encode_event(event)) == event
