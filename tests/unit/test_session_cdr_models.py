"""OCPI 2.2.1 Session and CDR objects: spec examples, OCPI JSON output, strictness, and the
CdrLocation truncation of longer Location text.

Defects of the spec examples (see tests/data/ocpi-examples/README.md) and how they are handled:

- ``ENERGY`` volumes of the session examples are Wh-sized (e.g. 41000 in a 41.12 kWh session)
  while the text says kWh. They are **tolerated**: a volume is any number and is not checked
  against ``kwh`` (a running Session's periods may be incomplete), so the examples parse.
- The CDR example has latitude and longitude swapped (``3.729944``/``51.047599`` for Gent).
  It is **accepted**: each value is within the range of the axis it is given for (|lat| <= 90,
  |lon| <= 180), and a swap of in-range values cannot be told from a real place. A swapped
  pair whose longitude is beyond +-90 becomes an out-of-range latitude and **is refused**.
- The session PATCH examples are partial bodies, not Sessions: they are refused as Sessions and
  parse once applied to a full Session (fields replaced, ``charging_periods`` appended, as the
  spec defines PATCH for sessions).
"""

from __future__ import annotations

import copy
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bridge.ocpi.cdrs import (
    CDR_LOCATION_LIMITS,
    Cdr,
    CdrLocation,
    SignedData,
    truncate_for_cdr_location,
)
from bridge.ocpi.locations import Location
from bridge.ocpi.sessions import (
    SESSION_ONLY_DIMENSIONS,
    AuthMethod,
    CdrDimension,
    CdrDimensionType,
    ChargingPeriod,
    ChargingPreferences,
    ChargingPreferencesResponse,
    ProfileType,
    Session,
    SessionStatus,
)
from bridge.ocpi.wire import format_datetime, parse_datetime

EXAMPLES = Path(__file__).parents[1] / "data" / "ocpi-examples"
SESSION_DIR = EXAMPLES / "sessions"
CDR_DIR = EXAMPLES / "cdrs"
STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})?$")
WIRE_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def read_example(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def is_full_object(path: Path) -> bool:
    return "country_code" in read_example(path)


SESSION_EXAMPLES = sorted(SESSION_DIR.glob("*.json"))
FULL_SESSIONS = [path for path in SESSION_EXAMPLES if is_full_object(path)]
SESSION_PATCHES = [path for path in SESSION_EXAMPLES if not is_full_object(path)]
CDR_EXAMPLES = sorted(CDR_DIR.glob("*.json"))


def as_emitted(value: Any) -> Any:
    """``value`` with every DateTime string rewritten the way we emit it (``...000Z``)."""
    if isinstance(value, dict):
        return {key: as_emitted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [as_emitted(item) for item in value]
    if isinstance(value, str) and STAMP.match(value):
        return format_datetime(parse_datetime(value))
    return value


def stamps_and_numbers(value: Any) -> tuple[list[str], list[Any]]:
    """DateTime strings and JSON numbers found anywhere in ``value``."""
    stamps: list[str] = []
    numbers: list[Any] = []

    def walk(item: Any) -> None:
        if isinstance(item, dict):
            for child in item.values():
                walk(child)
        elif isinstance(item, list):
            for child in item:
                walk(child)
        elif isinstance(item, str) and STAMP.match(item):
            stamps.append(item)
        elif isinstance(item, int | float) and not isinstance(item, bool):
            numbers.append(item)

    walk(value)
    return stamps, numbers


def a_session() -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(
        read_example(SESSION_DIR / "session_example_2_short_finished.json")
    )
    return data


def a_cdr() -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(read_example(CDR_DIR / "cdr_example.json"))
    return data


def a_location() -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(
        read_example(EXAMPLES / "locations" / "location_example.json")
    )
    return data


def set_at(data: Any, path: tuple[int | str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def remove_at(data: Any, path: tuple[int | str, ...]) -> None:
    for key in path[:-1]:
        data = data[key]
    del data[path[-1]]


def error_paths(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[int | str, ...]]:
    return [tuple(error["loc"]) for error in exc.value.errors()]


def refused_at(model: type[Session] | type[Cdr], data: Any, path: tuple[int | str, ...]) -> None:
    with pytest.raises(ValidationError) as exc:
        model.model_validate(data)
    paths = error_paths(exc)
    assert any(loc[: len(path)] == path for loc in paths), paths


def apply_session_patch(session: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Spec PATCH semantics for a Session: fields replaced, ``charging_periods`` appended."""
    merged = {**session, **{k: v for k, v in patch.items() if k != "charging_periods"}}
    merged["charging_periods"] = session.get("charging_periods", []) + patch.get(
        "charging_periods", []
    )
    return merged


# --- spec examples: sessions -----------------------------------------------------------------


def test_session_examples_are_classified_when_listing_the_folder() -> None:
    assert [path.name for path in FULL_SESSIONS] == [
        "session_example_1_simple_start.json",
        "session_example_2_short_finished.json",
    ]
    assert [path.name for path in SESSION_PATCHES] == [
        "session_patch_example_charging_period.json",
        "session_patch_example_total_cost.json",
    ]


@pytest.mark.parametrize("path", FULL_SESSIONS, ids=lambda path: path.name)
def test_session_round_trips_when_spec_example(path: Path) -> None:
    session = Session.model_validate(read_example(path))
    assert Session.model_validate_json(session.model_dump_json(exclude_none=True)) == session
    assert Session.model_validate_json(session.model_dump_json()) == session


@pytest.mark.parametrize("path", FULL_SESSIONS, ids=lambda path: path.name)
def test_session_json_is_the_example_when_spec_example_is_dumped(path: Path) -> None:
    original = read_example(path)
    dumped = json.loads(Session.model_validate(original).model_dump_json(exclude_none=True))
    expected = as_emitted(original)
    expected.setdefault("charging_periods", [])  # "*" list: always written, [] when empty
    assert dumped == expected  # JSON numbers compare by value (8.50 == 8.5, 0.0 == 0)
    assert [key for key in dumped if key in original] == list(original)  # spec field order


def test_session_volumes_are_tolerated_when_wh_sized_as_in_the_spec_example() -> None:
    session = Session.model_validate(a_session())
    assert session.kwh == Decimal("41.12")
    energy = [
        dimension.volume
        for period in session.charging_periods
        for dimension in period.dimensions
        if dimension.type is CdrDimensionType.ENERGY
    ]
    assert energy == [Decimal(120), Decimal(41000)]  # Wh-sized; not checked against kwh


@pytest.mark.parametrize("path", SESSION_PATCHES, ids=lambda path: path.name)
def test_session_patch_is_refused_when_parsed_as_a_session(path: Path) -> None:
    with pytest.raises(ValidationError) as exc:
        Session.model_validate(read_example(path))
    assert ("id",) in error_paths(exc)


@pytest.mark.parametrize("path", SESSION_PATCHES, ids=lambda path: path.name)
def test_session_patch_parses_and_round_trips_when_applied_to_a_session(path: Path) -> None:
    base = read_example(SESSION_DIR / "session_example_1_simple_start.json")
    base["start_date_time"] = "2019-06-23T08:00:00Z"
    base["status"] = "ACTIVE"
    patch = read_example(path)
    session = Session.model_validate(apply_session_patch(base, patch))
    assert session.last_updated == parse_datetime(patch["last_updated"])
    assert session.total_cost is not None
    assert session.total_cost.excl_vat == Decimal(str(patch["total_cost"]["excl_vat"]))
    assert len(session.charging_periods) == len(patch.get("charging_periods", []))
    assert Session.model_validate_json(session.model_dump_json(exclude_none=True)) == session


# --- spec examples: CDRs ---------------------------------------------------------------------


def test_cdr_examples_are_found_when_listing_the_folder() -> None:
    assert [path.name for path in CDR_EXAMPLES] == ["cdr_example.json"]


@pytest.mark.parametrize("path", CDR_EXAMPLES, ids=lambda path: path.name)
def test_cdr_round_trips_when_spec_example(path: Path) -> None:
    cdr = Cdr.model_validate(read_example(path))
    assert Cdr.model_validate_json(cdr.model_dump_json(exclude_none=True)) == cdr
    assert Cdr.model_validate_json(cdr.model_dump_json()) == cdr


@pytest.mark.parametrize("path", CDR_EXAMPLES, ids=lambda path: path.name)
def test_cdr_json_is_the_example_when_spec_example_is_dumped(path: Path) -> None:
    original = read_example(path)
    dumped = json.loads(Cdr.model_validate(original).model_dump_json(exclude_none=True))
    assert dumped == as_emitted(original)
    assert list(dumped) == list(original)  # spec field order


def test_cdr_example_is_accepted_when_its_swapped_coordinates_are_in_range() -> None:
    cdr = Cdr.model_validate(a_cdr())
    # Gent is at 51.05 N 3.73 E: the example swaps them, but both are valid on either axis.
    assert cdr.cdr_location.coordinates.latitude == "3.729944"
    assert cdr.cdr_location.coordinates.longitude == "51.047599"


def test_cdr_is_refused_when_swapped_coordinates_leave_the_latitude_range() -> None:
    data = a_cdr()
    data["cdr_location"]["coordinates"] = {"latitude": "151.209296", "longitude": "-33.868820"}
    refused_at(Cdr, data, ("cdr_location", "coordinates", "latitude"))


def test_cdr_tariffs_are_parsed_when_given() -> None:
    cdr = Cdr.model_validate(a_cdr())
    assert [tariff.id for tariff in cdr.tariffs] == ["12"]


def test_cdr_tariffs_default_to_empty_when_omitted() -> None:
    data = a_cdr()
    del data["tariffs"]
    assert Cdr.model_validate(data).tariffs == []


# --- OCPI JSON output ------------------------------------------------------------------------


def test_datetimes_are_millisecond_utc_z_when_session_is_dumped() -> None:
    data = a_session()
    data["end_date_time"] = "2015-06-30T01:50:16.123456+02:00"  # offset converted, truncated
    session = Session.model_validate(data)
    text = session.model_dump_json(exclude_none=True)
    dumped = json.loads(text)
    assert dumped["start_date_time"] == "2015-06-29T22:39:09.000Z"
    assert dumped["end_date_time"] == "2015-06-29T23:50:16.123Z"
    stamps, _ = stamps_and_numbers(dumped)
    assert len(stamps) == 6
    assert all(WIRE_STAMP.match(stamp) for stamp in stamps)


def test_datetimes_are_millisecond_utc_z_when_built_from_aware_datetimes() -> None:
    start = datetime(2015, 6, 29, 22, 39, 9, 987654, tzinfo=timezone(timedelta(hours=2)))
    data = a_session()
    data["start_date_time"] = start
    data["end_date_time"] = None
    data["charging_periods"] = []
    dumped = json.loads(Session.model_validate(data).model_dump_json(exclude_none=True))
    assert dumped["start_date_time"] == "2015-06-29T20:39:09.987Z"
    assert "end_date_time" not in dumped


def test_numbers_are_json_numbers_when_cdr_is_dumped() -> None:
    cdr = Cdr.model_validate(a_cdr())
    text = cdr.model_dump_json(exclude_none=True)
    assert '"total_energy":15.342' in text
    assert '"total_cost":{"excl_vat":4,"incl_vat":4.4}' in text
    assert '"volume":1.973' in text
    _, numbers = stamps_and_numbers(json.loads(text))
    assert numbers  # every number found is an int/float, none a string
    assert all(isinstance(value, int | float) for value in numbers)
    assert '"15.342"' not in text


def test_numbers_are_json_numbers_when_session_is_dumped() -> None:
    text = Session.model_validate(a_session()).model_dump_json(exclude_none=True)
    assert '"kwh":41.12' in text
    assert '"volume":0.718' in text
    assert '"total_cost":{"excl_vat":8.5,"incl_vat":9.35}' in text


def test_decimal_strings_are_read_exactly_when_given_as_text() -> None:
    data = a_session()
    data["kwh"] = "0.1"
    assert Session.model_validate(data).kwh == Decimal("0.1")


# --- refusals: Session -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "country_code",
        "party_id",
        "id",
        "start_date_time",
        "kwh",
        "cdr_token",
        "auth_method",
        "location_id",
        "evse_uid",
        "connector_id",
        "currency",
        "status",
        "last_updated",
    ],
)
def test_session_is_refused_when_required_field_is_missing(field: str) -> None:
    data = a_session()
    del data[field]
    refused_at(Session, data, (field,))


@pytest.mark.parametrize("field", ["country_code", "party_id", "uid", "type", "contract_id"])
def test_session_is_refused_when_cdr_token_field_is_missing(field: str) -> None:
    data = a_session()
    del data["cdr_token"][field]
    refused_at(Session, data, ("cdr_token", field))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("id",), "S" * 37),  # over CiString(36)
        (("id",), ""),
        (("id",), "caf\u00e9"),  # CiString is printable ASCII
        (("location_id",), "L" * 37),
        (("evse_uid",), "E" * 37),
        (("connector_id",), "C" * 37),
        (("authorization_reference",), "A" * 37),
        (("meter_id",), "M" * 256),
        (("currency",), "eur"),
        (("currency",), "EURO"),
        (("currency",), "E1R"),
        (("currency",), 978),
        (("status",), "RESERVED"),  # the spec prose's word; the enum value is RESERVATION
        (("status",), "active"),
        (("auth_method",), "RFID"),
        (("kwh",), -0.001),
        (("kwh",), "abc"),
        (("kwh",), True),
        (("kwh",), float("nan")),
        (("country_code",), "BEL"),
        (("party_id",), "BE"),
        (("cdr_token", "type"), "BADGE"),
        (("cdr_token", "uid"), "U" * 37),
        (("cdr_token", "contract_id"), "C" * 37),
        (("start_date_time",), datetime(2015, 6, 29, 22, 39, 9)),  # naive
        (("last_updated",), datetime(2015, 6, 29, 23, 50, 17)),  # naive
        (("last_updated",), "yesterday"),
        (("end_date_time",), "2015-06-29T22:39:08Z"),  # before start
        (("total_cost",), {"incl_vat": 1.0}),
        (("charging_periods",), [{"start_date_time": "2015-06-29T22:39:09Z", "dimensions": []}]),
        (("charging_periods", 0, "dimensions", 0, "type"), "VOLTAGE"),  # unknown dimension
        (("charging_periods", 0, "dimensions", 0, "volume"), "lots"),
        (("charging_periods", 2, "dimensions", 0, "volume"), -0.1),  # negative PARKING_TIME
        (("charging_periods", 2, "tariff_id"), "T" * 37),
    ],
)
def test_session_is_refused_with_the_field_named_when_invalid(
    path: tuple[int | str, ...], value: Any
) -> None:
    data = a_session()
    set_at(data, path, value)
    refused_at(Session, data, path)


def test_session_is_accepted_when_id_is_exactly_36_characters() -> None:
    data = a_session()
    data["id"] = "S" * 36
    assert Session.model_validate(data).id == "S" * 36


def test_session_is_accepted_when_reservation_without_evse() -> None:
    data = a_session()
    data.update(status="RESERVATION", evse_uid="#NA", connector_id="#NA", kwh=0)
    data["charging_periods"] = [
        {
            "start_date_time": data["start_date_time"],
            "dimensions": [{"type": "RESERVATION_TIME", "volume": 0.25}],
        }
    ]
    session = Session.model_validate(data)
    assert session.status is SessionStatus.RESERVATION
    assert session.evse_uid == "#NA"


def test_session_is_refused_when_a_period_lists_a_dimension_twice() -> None:
    data = a_session()
    data["charging_periods"][0]["dimensions"].append({"type": "ENERGY", "volume": 1})
    refused_at(Session, data, ("charging_periods", 0, "dimensions"))


@pytest.mark.parametrize("volume", [-1, 100.5])
def test_session_is_refused_when_state_of_charge_is_outside_0_to_100(volume: float) -> None:
    data = a_session()
    data["charging_periods"][0]["dimensions"].append({"type": "STATE_OF_CHARGE", "volume": volume})
    refused_at(Session, data, ("charging_periods", 0, "dimensions", 2))


def test_session_is_accepted_when_energy_volume_is_negative() -> None:
    data = a_session()  # net export (V2G) is a negative ENERGY volume
    data["charging_periods"][0]["dimensions"][0]["volume"] = -2.5
    session = Session.model_validate(data)
    assert session.charging_periods[0].dimensions[0].volume == Decimal("-2.5")


def test_session_accepts_session_only_dimensions_when_in_a_session() -> None:
    dimensions = [{"type": kind.value, "volume": 50} for kind in sorted(SESSION_ONLY_DIMENSIONS)]
    period = ChargingPeriod.model_validate(
        {"start_date_time": "2015-06-29T22:39:09Z", "dimensions": dimensions}
    )
    assert {dimension.type for dimension in period.dimensions} == SESSION_ONLY_DIMENSIONS


def test_enums_hold_the_spec_values_when_listed() -> None:
    assert {s.value for s in SessionStatus} == {
        "ACTIVE",
        "COMPLETED",
        "INVALID",
        "PENDING",
        "RESERVATION",
    }
    assert {a.value for a in AuthMethod} == {"AUTH_REQUEST", "COMMAND", "WHITELIST"}
    assert len(CdrDimensionType) == 13
    assert {d.value for d in SESSION_ONLY_DIMENSIONS} == {
        "CURRENT",
        "ENERGY_EXPORT",
        "ENERGY_IMPORT",
        "POWER",
        "STATE_OF_CHARGE",
    }
    assert {p.value for p in ProfileType} == {"CHEAP", "FAST", "GREEN", "REGULAR"}
    assert len(ChargingPreferencesResponse) == 5


# --- ChargingPreferences ---------------------------------------------------------------------


def test_charging_preferences_round_trip_when_complete() -> None:
    preferences = ChargingPreferences.model_validate(
        {
            "profile_type": "FAST",
            "departure_time": "2019-06-23T16:00:00+02:00",
            "energy_need": 20.5,
            "discharge_allowed": False,
        }
    )
    text = preferences.model_dump_json(exclude_none=True)
    assert json.loads(text) == {
        "profile_type": "FAST",
        "departure_time": "2019-06-23T14:00:00.000Z",
        "energy_need": 20.5,
        "discharge_allowed": False,
    }
    assert ChargingPreferences.model_validate_json(text) == preferences


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("profile_type", "SLOW"),
        ("energy_need", -1),
        ("discharge_allowed", "yes"),
        ("departure_time", datetime(2019, 6, 23, 16, 0)),  # naive
    ],
)
def test_charging_preferences_are_refused_when_invalid(field: str, value: Any) -> None:
    data: dict[str, Any] = {"profile_type": "CHEAP", field: value}
    with pytest.raises(ValidationError) as exc:
        ChargingPreferences.model_validate(data)
    assert (field,) in error_paths(exc)


# --- refusals: CDR ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "country_code",
        "party_id",
        "id",
        "start_date_time",
        "end_date_time",
        "cdr_token",
        "auth_method",
        "cdr_location",
        "currency",
        "charging_periods",
        "total_cost",
        "total_energy",
        "total_time",
        "last_updated",
    ],
)
def test_cdr_is_refused_when_required_field_is_missing(field: str) -> None:
    data = a_cdr()
    del data[field]
    refused_at(Cdr, data, (field,))


@pytest.mark.parametrize(
    "field",
    [
        "id",
        "address",
        "city",
        "country",
        "coordinates",
        "evse_uid",
        "evse_id",
        "connector_id",
        "connector_standard",
        "connector_format",
        "connector_power_type",
    ],
)
def test_cdr_is_refused_when_cdr_location_field_is_missing(field: str) -> None:
    data = a_cdr()
    del data["cdr_location"][field]
    refused_at(Cdr, data, ("cdr_location", field))


@pytest.mark.parametrize("kind", [kind.value for kind in sorted(SESSION_ONLY_DIMENSIONS)])
def test_cdr_is_refused_when_a_period_has_a_session_only_dimension(kind: str) -> None:
    data = a_cdr()
    data["charging_periods"][0]["dimensions"].append({"type": kind, "volume": 10})
    refused_at(Cdr, data, ("charging_periods",))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("id",), "C" * 40),  # over CiString(39)
        (("id",), ""),
        (("session_id",), "S" * 37),
        (("invoice_reference_id",), "I" * 40),
        (("remark",), "R" * 256),
        (("meter_id",), "M" * 256),
        (("currency",), "Eur"),
        (("currency",), "EU"),
        (("auth_method",), "PLUG_AND_CHARGE"),
        (("charging_periods",), []),  # at least one period
        (("charging_periods", 0, "dimensions", 0, "type"), "FLAT"),  # unknown dimension
        (("charging_periods", 0, "dimensions", 0, "volume"), -1),  # negative TIME
        (("end_date_time",), "2015-06-29T21:39:08.999Z"),  # before start
        (("end_date_time",), datetime(2015, 6, 29, 23, 37, 32)),  # naive
        (("last_updated",), datetime(2015, 6, 29, 22, 1, 13)),  # naive
        (("total_energy",), -0.5),
        (("total_time",), -1),
        (("total_parking_time",), 1.974),  # over total_time (1.973)
        (("total_parking_time",), -0.1),
        (("total_cost",), {"incl_vat": 4.4}),
        (("credit",), "true"),
        (("home_charging_compensation",), 1),
        (("cdr_token", "type"), "CARD"),
        (("cdr_location", "address"), "A" * 46),  # CdrLocation address is string(45)
        (("cdr_location", "state"), "S" * 21),  # CdrLocation state is string(20)
        (("cdr_location", "city"), "C" * 46),
        (("cdr_location", "postal_code"), "P" * 11),
        (("cdr_location", "name"), "N" * 256),
        (("cdr_location", "country"), "BE"),
        (("cdr_location", "evse_id"), "E" * 49),
        (("cdr_location", "evse_uid"), "U" * 37),
        (("cdr_location", "connector_standard"), "SCHUKO"),
        (("cdr_location", "connector_format"), "PLUG"),
        (("cdr_location", "connector_power_type"), "AC"),
        (("cdr_location", "coordinates", "latitude"), "51.04"),
        (("signed_data",), {"encoding_method": "OCMF", "signed_values": []}),
        (("signed_data", "encoding_method"), "E" * 37),
        (("tariffs",), [{"id": "12"}]),  # a Tariff lacking its required fields
    ],
)
def test_cdr_is_refused_with_the_field_named_when_invalid(
    path: tuple[int | str, ...], value: Any
) -> None:
    data = a_cdr()
    if path[0] == "signed_data" and len(path) > 1:
        data["signed_data"] = {
            "encoding_method": "OCMF",
            "signed_values": [{"nature": "Start", "plain_data": "p", "signed_data": "cw=="}],
        }
    set_at(data, path, value)
    refused_at(Cdr, data, path)


def test_cdr_is_accepted_when_id_is_exactly_39_characters() -> None:
    data = a_cdr()
    data["id"] = "C" * 39
    assert Cdr.model_validate(data).id == "C" * 39


def test_cdr_is_refused_when_end_is_before_start() -> None:
    data = a_cdr()
    data["end_date_time"] = "2015-06-29T20:00:00Z"
    refused_at(Cdr, data, ("end_date_time",))


def test_cdr_is_accepted_when_end_equals_start() -> None:
    data = a_cdr()
    data["end_date_time"] = data["start_date_time"]
    cdr = Cdr.model_validate(data)
    assert cdr.end_date_time == cdr.start_date_time


def test_cdr_is_refused_when_parking_time_exceeds_total_time() -> None:
    data = a_cdr()
    data["total_parking_time"] = 2.0
    refused_at(Cdr, data, ("total_parking_time",))


def test_cdr_is_accepted_when_parking_time_equals_total_time() -> None:
    data = a_cdr()
    data["total_parking_time"] = data["total_time"]
    assert Cdr.model_validate(data).total_parking_time == Decimal("1.973")


def test_cdr_is_refused_when_credit_lacks_credit_reference_id() -> None:
    data = a_cdr()
    data["credit"] = True
    refused_at(Cdr, data, ("credit_reference_id",))


@pytest.mark.parametrize("credit", [False, None])
def test_cdr_is_refused_when_credit_reference_id_without_credit(credit: bool | None) -> None:
    data = a_cdr()
    data["credit"] = credit
    data["credit_reference_id"] = "12345"
    refused_at(Cdr, data, ("credit_reference_id",))


def test_cdr_is_refused_when_credit_references_itself() -> None:
    data = a_cdr()
    data.update(credit=True, credit_reference_id="12345")
    refused_at(Cdr, data, ("credit_reference_id",))


def test_credit_cdr_round_trips_when_it_references_the_original() -> None:
    data = a_cdr()
    data.update(
        id="12345-C",
        credit=True,
        credit_reference_id="12345",
        total_cost={"excl_vat": -4.00, "incl_vat": -4.40},
        total_time_cost={"excl_vat": -4.00, "incl_vat": -4.40},
    )
    cdr = Cdr.model_validate(data)
    assert cdr.credit is True
    assert cdr.total_cost.excl_vat == Decimal(-4)
    assert Cdr.model_validate_json(cdr.model_dump_json(exclude_none=True)) == cdr


def test_session_is_refused_when_periods_are_out_of_order() -> None:
    data = a_session()
    data["charging_periods"][1]["start_date_time"] = data["charging_periods"][0]["start_date_time"]
    refused_at(Session, data, ("charging_periods",))


def test_cdr_is_refused_when_periods_are_out_of_order() -> None:
    data = a_cdr()
    data["charging_periods"].insert(
        0,
        {
            "start_date_time": "2015-06-29T22:00:00Z",
            "dimensions": [{"type": "PARKING_TIME", "volume": 0.5}],
        },
    )
    refused_at(Cdr, data, ("charging_periods",))


def test_cdr_keeps_all_cdr_dimensions_when_none_is_session_only() -> None:
    allowed = [kind for kind in CdrDimensionType if kind not in SESSION_ONLY_DIMENSIONS]
    assert len(allowed) == 8
    data = a_cdr()
    data["charging_periods"][0]["dimensions"] = [
        {"type": kind.value, "volume": 1} for kind in allowed
    ]
    cdr = Cdr.model_validate(data)
    assert [d.type for d in cdr.charging_periods[0].dimensions] == allowed


def test_signed_data_round_trips_when_complete() -> None:
    signed = SignedData.model_validate(
        {
            "encoding_method": "Alfen Eichrecht",
            "encoding_method_version": 1,
            "public_key": "3059301306072A8648CE3D020106082A8648CE3D03010703420004",
            "signed_values": [
                {"nature": "Start", "plain_data": "1234.5 kWh", "signed_data": "c2lnbmVk"},
                {"nature": "End", "plain_data": "1250.1 kWh", "signed_data": "c2lnbmVkMg=="},
            ],
            "url": "https://example.com/transparency",
        }
    )
    data = a_cdr()
    data["signed_data"] = json.loads(signed.model_dump_json(exclude_none=True))
    cdr = Cdr.model_validate(data)
    assert cdr.signed_data == signed
    assert Cdr.model_validate_json(cdr.model_dump_json(exclude_none=True)) == cdr


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("encoding_method_version", "1"),
        ("public_key", "K" * 513),
        ("url", "U" * 513),
        ("signed_values", [{"nature": "N" * 33, "plain_data": "p", "signed_data": "s"}]),
        ("signed_values", [{"nature": "End", "plain_data": "p" * 5001, "signed_data": "s"}]),
        ("signed_values", [{"nature": "End", "plain_data": "p", "signed_data": "s" * 5001}]),
    ],
)
def test_signed_data_is_refused_when_invalid(field: str, value: Any) -> None:
    data: dict[str, Any] = {
        "encoding_method": "OCMF",
        "signed_values": [{"nature": "Start", "plain_data": "p", "signed_data": "s"}],
    }
    data[field] = value
    with pytest.raises(ValidationError) as exc:
        SignedData.model_validate(data)
    assert any(loc[0] == field for loc in error_paths(exc))


def test_cdr_dimension_volume_is_a_decimal_when_parsed_from_a_float() -> None:
    dimension = CdrDimension.model_validate({"type": "ENERGY", "volume": 0.1})
    assert dimension.volume == Decimal("0.1")


# --- CdrLocation from a Location and truncation -----------------------------------------------


def test_truncation_returns_the_text_unchanged_when_it_fits() -> None:
    assert truncate_for_cdr_location("F.Rooseveltlaan 3A", 45) == "F.Rooseveltlaan 3A"
    assert truncate_for_cdr_location("A" * 45, 45) == "A" * 45
    assert truncate_for_cdr_location("two  spaces", 45) == "two  spaces"  # a frozen copy


def test_truncation_cuts_at_a_word_boundary_when_over_the_limit() -> None:
    address = "Industrieterrein De Hoogte, Kavel 17, Gebouw C, Ingang Noord"
    cut = truncate_for_cdr_location(address, 45)
    assert cut == "Industrieterrein De Hoogte, Kavel 17, Gebouw"
    assert len(cut) <= 45


def test_truncation_drops_trailing_separators_when_cut_after_them() -> None:
    cut = truncate_for_cdr_location("Noord-Brabant, Nederland, Europa", 26)
    assert cut == "Noord-Brabant, Nederland"


def test_truncation_collapses_whitespace_when_over_the_limit() -> None:
    text = "  Rue\tde la\n\nLoi   200,   Bruxelles  "
    assert truncate_for_cdr_location(text, 30) == "Rue de la Loi 200, Bruxelles"


def test_truncation_cuts_inside_a_word_when_no_boundary_is_near() -> None:
    assert truncate_for_cdr_location("Ab " + "x" * 60, 20) == "Ab " + "x" * 17
    assert truncate_for_cdr_location("y" * 60, 20) == "y" * 20


def test_truncation_keeps_a_combining_mark_with_its_letter_when_cutting() -> None:
    text = "Cafe\u0301" * 10  # "Café" with a combining acute accent, no spaces
    assert truncate_for_cdr_location(text, 5) == "Cafe\u0301"
    assert truncate_for_cdr_location(text, 4) == "Caf"  # not "Cafe" without its accent


@pytest.mark.parametrize(("text", "limit"), [("", 10), ("   \t ", 3), ("abc", 0)])
def test_truncation_is_refused_when_nothing_can_be_kept(text: str, limit: int) -> None:
    with pytest.raises(ValueError, match=r"limit|nothing"):
        truncate_for_cdr_location(text, limit)


@given(
    text=st.text(
        alphabet=st.sampled_from("ab ,;\t\n\u00e9\u0301"), min_size=1, max_size=120
    ).filter(lambda text: text.strip()),
    limit=st.integers(min_value=1, max_value=60),
)
def test_truncation_fits_and_is_a_prefix_when_any_text(text: str, limit: int) -> None:
    cut = truncate_for_cdr_location(text, limit)
    assert 1 <= len(cut) <= limit
    if cut != text:
        compact = " ".join(text.split())
        assert compact.startswith(cut)
        assert cut == cut.strip()


def test_cdr_location_copies_the_location_when_its_text_fits() -> None:
    location = Location.model_validate(a_location())
    cdr_location = CdrLocation.from_location(location, "3257", "1")
    assert json.loads(cdr_location.model_dump_json(exclude_none=True)) == {
        "id": "LOC1",
        "name": "Gent Zuid",
        "address": "F.Rooseveltlaan 3A",
        "city": "Gent",
        "postal_code": "9000",
        "country": "BEL",
        "coordinates": {"latitude": "51.047599", "longitude": "3.729944"},
        "evse_uid": "3257",
        "evse_id": "BE*BEC*E041503002",
        "connector_id": "1",
        "connector_standard": "IEC_62196_T2",
        "connector_format": "SOCKET",
        "connector_power_type": "AC_3_PHASE",
    }


def test_cdr_location_truncates_to_the_cdr_limits_when_location_text_is_longer() -> None:
    data = a_location()
    data["address"] = "Boulevard du Souverain " + " ".join(["Batiment"] * 25) + " 280"
    data["state"] = "Region de Bruxelles-Capitale / Brussels Hoofdstedelijk"[:45]
    data["name"] = "N" * 255
    location = Location.model_validate(data)
    assert len(location.address) > 200
    cdr_location = CdrLocation.from_location(location, "3256", "2")
    assert cdr_location.address == "Boulevard du Souverain Batiment Batiment"
    assert cdr_location.state == "Region de Bruxelles-"  # no space in reach: cut in the word
    assert len(cdr_location.state) <= CDR_LOCATION_LIMITS["state"]
    assert cdr_location.name == "N" * 255
    assert cdr_location.connector_format.value == "SOCKET"
    data = a_cdr()
    data["cdr_location"] = json.loads(cdr_location.model_dump_json(exclude_none=True))
    assert Cdr.model_validate(data).cdr_location == cdr_location


def test_cdr_location_has_na_evse_id_when_the_evse_has_none() -> None:
    data = a_location()
    del data["evses"][0]["evse_id"]
    cdr_location = CdrLocation.from_location(Location.model_validate(data), "3256", "1")
    assert cdr_location.evse_id == "#NA"


def test_cdr_location_matches_ids_case_insensitively_when_built() -> None:
    data = a_location()
    data["evses"][0]["uid"] = "Evse-A"
    cdr_location = CdrLocation.from_location(Location.model_validate(data), "EVSE-a", "1")
    assert cdr_location.evse_uid == "Evse-A"


@pytest.mark.parametrize(("evse_uid", "connector_id"), [("9999", "1"), ("3257", "2")])
def test_cdr_location_is_refused_when_evse_or_connector_is_unknown(
    evse_uid: str, connector_id: str
) -> None:
    location = Location.model_validate(a_location())
    with pytest.raises(LookupError):
        CdrLocation.from_location(location, evse_uid, connector_id)
