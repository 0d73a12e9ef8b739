"""OCPI 2.2.1 Locations objects: spec examples, strictness, OCPI JSON output, PATCH bodies."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bridge.ocpi.locations import (
    EVSE,
    Connector,
    ConnectorFormat,
    ConnectorType,
    EnergyMix,
    GeoLocation,
    Hours,
    Location,
    PowerType,
    PublishTokenType,
    RegularHours,
    Status,
    StatusSchedule,
    evse_status_patch,
)
from bridge.ocpi.wire import format_datetime, parse_datetime

EXAMPLES = Path(__file__).parent.parent / "data" / "ocpi-examples" / "locations"
DATETIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T")
WIRE_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def load(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def _is_full_location(name: str) -> bool:
    data = load(name)
    return isinstance(data, dict) and "country_code" in data


ALL_EXAMPLES = sorted(path.name for path in EXAMPLES.glob("*.json"))
FULL_LOCATIONS = [name for name in ALL_EXAMPLES if _is_full_location(name)]
FRAGMENTS = [name for name in ALL_EXAMPLES if name not in FULL_LOCATIONS]
HOURS_FRAGMENTS = [name for name in FRAGMENTS if name.startswith("location_hours_")]
ENERGY_MIX_FRAGMENTS = [name for name in FRAGMENTS if name.startswith("location_energymix_")]


def wire_form(value: Any) -> Any:
    """The example with its DateTimes in the form we emit (``...000Z``)."""
    if isinstance(value, dict):
        return {key: wire_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [wire_form(item) for item in value]
    if isinstance(value, str) and DATETIME_TEXT.match(value):
        return format_datetime(parse_datetime(value))
    return value


def datetimes_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [text for item in value.values() for text in datetimes_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in datetimes_in(item)]
    if isinstance(value, str) and DATETIME_TEXT.match(value):
        return [value]
    return []


def valid_location() -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(load("location_example.json"))
    return data


def error_locations(exc: pytest.ExceptionInfo[ValidationError]) -> list[tuple[int | str, ...]]:
    return [tuple(error["loc"]) for error in exc.value.errors()]


def set_path(data: Any, path: tuple[int | str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def connector(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": "1",
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 16,
        "last_updated": "2024-01-31T12:00:00Z",
    }
    data.update(changes)
    return data


# --- spec examples ---------------------------------------------------------------------------


def test_examples_are_classified_when_listing_the_locations_folder() -> None:
    assert len(FULL_LOCATIONS) == 6
    assert len(HOURS_FRAGMENTS) == 3
    assert len(ENERGY_MIX_FRAGMENTS) == 3


@pytest.mark.parametrize("name", FULL_LOCATIONS)
def test_location_round_trips_when_full_spec_example(name: str) -> None:
    location = Location.model_validate(load(name))
    text = location.model_dump_json(exclude_none=True)
    assert Location.model_validate_json(text) == location


@pytest.mark.parametrize("name", FULL_LOCATIONS)
def test_json_is_the_example_itself_when_full_spec_example_is_dumped(name: str) -> None:
    # Same field names, enum values, numbers and nesting; no null or added fields; only the
    # DateTimes are rewritten to millisecond UTC "Z" form.
    original = load(name)
    dumped = json.loads(Location.model_validate(original).model_dump_json(exclude_none=True))
    assert dumped == wire_form(original)
    assert list(dumped) == list(original)  # spec field order
    stamps = datetimes_in(dumped)
    assert stamps
    assert all(WIRE_DATETIME.match(stamp) and len(stamp) <= 25 for stamp in stamps)


@pytest.mark.parametrize("name", FRAGMENTS)
def test_fragment_is_refused_when_parsed_as_location(name: str) -> None:
    with pytest.raises(ValidationError):
        Location.model_validate(load(name))


@pytest.mark.parametrize("name", HOURS_FRAGMENTS)
def test_hours_round_trip_when_hours_example(name: str) -> None:
    original = load(name)
    hours = Hours.model_validate(original)
    dumped = json.loads(hours.model_dump_json(exclude_none=True))
    assert dumped == wire_form(original)
    assert Hours.model_validate(dumped) == hours


def test_hours_parse_when_regular_hours_example() -> None:
    hours = Hours.model_validate(load("location_regularhours_example.json")["opening_times"])
    assert hours.twentyfourseven is False
    assert hours.regular_hours is not None
    assert [day.weekday for day in hours.regular_hours] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("name", ENERGY_MIX_FRAGMENTS)
def test_energy_mix_round_trips_when_energy_mix_example(name: str) -> None:
    original = load(name)["energy_mix"]
    mix = EnergyMix.model_validate(original)
    dumped = json.loads(mix.model_dump_json(exclude_none=True))
    assert dumped == original  # JSON numbers compare equal (372 == 372.0)
    assert EnergyMix.model_validate(dumped) == mix


@pytest.mark.parametrize(
    "name",
    [
        "location_patch_example_location.json",
        "location_patch_example_remove_evse.json",
        "location_patch_example_status.json",
        "location_patch_example_tariff.json",
    ],
)
def test_patch_body_is_refused_when_parsed_as_evse_or_connector(name: str) -> None:
    for model in (EVSE, Connector):
        with pytest.raises(ValidationError):
            model.model_validate(load(name))


def test_add_evse_example_is_refused_when_connector_fields_are_missing() -> None:
    with pytest.raises(ValidationError) as exc:
        EVSE.model_validate(load("location_put_example_add_evse.json"))
    locations = error_locations(exc)
    for field in ("power_type", "max_voltage", "max_amperage", "last_updated"):
        assert ("connectors", 0, field) in locations
    assert ("physical_reference",) in locations  # a number, not a string


# --- refusals, with the field named ----------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("coordinates", "latitude"), "51.0475"),  # 4 decimals
        (("coordinates", "longitude"), "3.7299"),
        (("coordinates", "latitude"), "91.000000"),  # out of range
        (("coordinates", "latitude"), "-90.000001"),
        (("coordinates", "longitude"), "180.000001"),
        (("coordinates", "longitude"), "-181.00000"),
        (("coordinates", "latitude"), "-33.1234567"),  # regex ok, longer than string(10)
        (("coordinates", "latitude"), 51.047599),  # a number, not a string
        (("parking_type",), "ROOFTOP"),
        (("facilities",), ["SPACEPORT"]),
        (("evses", 0, "status"), "available"),  # enums are case-sensitive
        (("evses", 0, "capabilities"), ["TELEPORT"]),
        (("evses", 0, "connectors", 0, "standard"), "IEC_62196_T4"),
        (("evses", 0, "connectors", 0, "format"), "PLUG"),
        (("evses", 0, "connectors", 0, "power_type"), "AC_4_PHASE"),
        (("address",), "A" * 256),
        (("address",), ""),
        (("city",), "C" * 46),
        (("state",), "S" * 46),
        (("postal_code",), "P" * 11),
        (("name",), "N" * 256),
        (("id",), "L" * 37),
        (("evses", 0, "uid"), "U" * 37),
        (("evses", 0, "uid"), "caf\u00e9"),  # CiString is ASCII
        (("evses", 0, "floor_level"), "-1234"),
        (("evses", 0, "physical_reference"), "R" * 17),
        (("evses", 0, "evse_id"), "not an EVSE id"),
        (("evses", 0, "connectors", 0, "tariff_ids"), ["T" * 37]),
        (("evses", 0, "connectors", 0, "max_voltage"), "220"),
        (("evses", 0, "connectors", 0, "max_amperage"), 0),
        (("evses", 0, "connectors", 0, "last_updated"), "yesterday"),
        (("evses", 0, "connectors"), []),
        (("country",), "BE"),
        (("country",), "bel"),
        (("country_code",), "BEL"),
        (("party_id",), "BE"),
        (("publish",), "true"),
        (("time_zone",), "Europe/Gent"),
        (("time_zone",), "europe/brussels"),
        (("time_zone",), "localtime"),
        (("time_zone",), "../etc/passwd"),
        (("time_zone",), ""),
        (("last_updated",), datetime(2015, 6, 29, 20, 39, 9)),  # naive
        (("directions",), [{"language": "dutch", "text": "Links"}]),
        (("directions",), [{"language": "nl", "text": "x" * 513}]),
    ],
)
def test_location_is_refused_with_the_field_named_when_invalid(
    path: tuple[int | str, ...], value: Any
) -> None:
    data = valid_location()
    set_path(data, path, value)
    with pytest.raises(ValidationError) as exc:
        Location.model_validate(data)
    # The error is at the field, or inside it for list items (e.g. directions.0.text).
    assert any(loc[: len(path)] == path for loc in error_locations(exc))


@pytest.mark.parametrize("field", ["connectors", "last_updated", "status", "uid"])
def test_evse_is_refused_with_the_field_named_when_required_field_is_missing(field: str) -> None:
    data = valid_location()["evses"][0]
    del data[field]
    with pytest.raises(ValidationError) as exc:
        EVSE.model_validate(data)
    assert (field,) in error_locations(exc)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("address",), "A" * 255),  # string(255) after the 2.2.1 errata
        (("city",), "C" * 45),
        (("state",), "S" * 45),
        (("postal_code",), "P" * 10),
        (("evses", 0, "uid"), "U" * 36),
        (("evses", 0, "floor_level"), "-123"),
        (("evses", 0, "evse_id"), "NLALLEGO0000013"),  # eMI3 without separators
        (("evses", 0, "evse_id"), "nl*all*ego0000013"),  # CiString
        (("coordinates", "latitude"), "-90.00000"),
        (("coordinates", "latitude"), "51.0475991"),  # 7 decimals within string(10)
        (("coordinates", "longitude"), "-180.000000"),
        (("coordinates", "longitude"), "126.1049651"),
        (("time_zone",), "America/Argentina/Buenos_Aires"),
        (("time_zone",), "UTC"),
        (("last_updated",), "2015-06-29T20:39:09"),  # missing zone means UTC
    ],
)
def test_location_is_accepted_when_value_is_at_the_limit(
    path: tuple[int | str, ...], value: Any
) -> None:
    data = valid_location()
    set_path(data, path, value)
    Location.model_validate(data)


def test_location_is_refused_when_published_and_restricted_to_tokens() -> None:
    data = valid_location()
    data["publish_allowed_to"] = [{"uid": "12345678905880", "type": "RFID"}]
    with pytest.raises(ValidationError) as exc:
        Location.model_validate(data)
    assert ("publish_allowed_to",) in error_locations(exc)


def test_location_is_refused_when_evse_uids_repeat_in_another_case() -> None:
    data = valid_location()
    data["evses"][0]["uid"] = "ab-1"
    data["evses"][1]["uid"] = "AB-1"
    with pytest.raises(ValidationError, match="duplicate EVSE uid") as exc:
        Location.model_validate(data)
    assert ("evses",) in error_locations(exc)


def test_evse_is_refused_when_connector_ids_repeat() -> None:
    data = valid_location()["evses"][0]
    data["connectors"][1]["id"] = data["connectors"][0]["id"]
    with pytest.raises(ValidationError, match="duplicate connector id") as exc:
        EVSE.model_validate(data)
    assert ("connectors",) in error_locations(exc)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"uid": "12345678905880"},  # no type
        {"visual_number": "12345-67"},  # no issuer
        {"type": "RFID", "issuer": "NewMotion"},  # nothing that identifies tokens
    ],
)
def test_publish_token_is_refused_when_spec_rules_are_broken(data: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        PublishTokenType.model_validate(data)


def test_publish_token_is_accepted_when_only_group_is_given() -> None:
    assert PublishTokenType(group_id="FLEET-1").group_id == "FLEET-1"


# --- Hours -----------------------------------------------------------------------------------


MONDAY = {"weekday": 1, "period_begin": "08:00", "period_end": "20:00"}


def test_hours_are_refused_when_twentyfourseven_and_regular_hours_are_both_set() -> None:
    with pytest.raises(ValidationError) as exc:
        Hours.model_validate({"twentyfourseven": True, "regular_hours": [MONDAY]})
    assert ("regular_hours",) in error_locations(exc)


@pytest.mark.parametrize("regular_hours", [None, []])
def test_hours_are_refused_when_neither_twentyfourseven_nor_regular_hours(
    regular_hours: list[dict[str, Any]] | None,
) -> None:
    data: dict[str, Any] = {"twentyfourseven": False}
    if regular_hours is not None:
        data["regular_hours"] = regular_hours
    with pytest.raises(ValidationError) as exc:
        Hours.model_validate(data)
    assert ("regular_hours",) in error_locations(exc)


def test_hours_are_refused_inside_location_when_both_rules_are_set() -> None:
    data = valid_location()
    data["opening_times"] = {"twentyfourseven": True, "regular_hours": [MONDAY]}
    with pytest.raises(ValidationError) as exc:
        Location.model_validate(data)
    assert ("opening_times", "regular_hours") in error_locations(exc)


def test_hours_are_accepted_when_twentyfourseven_with_empty_regular_hours() -> None:
    assert Hours.model_validate({"twentyfourseven": True, "regular_hours": []}).twentyfourseven


@pytest.mark.parametrize(
    ("field", "begin", "end"),
    [
        ("period_begin", "8:00", "20:00"),  # no leading zero
        ("period_end", "08:00", "24:00"),  # regex stops at 23:59
        ("period_end", "20:00", "08:00"),  # must be later than period_begin
        ("period_end", "08:00", "08:00"),
    ],
)
def test_regular_hours_are_refused_when_period_is_malformed(
    field: str, begin: str, end: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        RegularHours.model_validate({"weekday": 1, "period_begin": begin, "period_end": end})
    assert (field,) in error_locations(exc)


@pytest.mark.parametrize("weekday", [0, 8, "1"])
def test_regular_hours_are_refused_when_weekday_is_not_1_to_7(weekday: Any) -> None:
    with pytest.raises(ValidationError) as exc:
        RegularHours.model_validate(
            {"weekday": weekday, "period_begin": "08:00", "period_end": "09:00"}
        )
    assert ("weekday",) in error_locations(exc)


def test_exceptional_period_is_refused_when_it_ends_before_it_begins() -> None:
    with pytest.raises(ValidationError) as exc:
        Hours.model_validate(
            {
                "twentyfourseven": True,
                "exceptional_closings": [
                    {"period_begin": "2018-12-25T05:00:00Z", "period_end": "2018-12-25T03:00:00Z"}
                ],
            }
        )
    assert ("exceptional_closings", 0, "period_end") in error_locations(exc)


def test_status_schedule_is_accepted_when_open_ended() -> None:
    schedule = StatusSchedule.model_validate(
        {"period_begin": "2030-01-01T00:00:00Z", "status": "PLANNED"}
    )
    assert schedule.period_end is None
    assert schedule.status is Status.PLANNED


# --- DateTime --------------------------------------------------------------------------------


def make_connector(last_updated: Any) -> Connector:
    return Connector(
        id="1",
        standard=ConnectorType.IEC_62196_T2,
        format=ConnectorFormat.SOCKET,
        power_type=PowerType.AC_3_PHASE,
        max_voltage=230,
        max_amperage=16,
        last_updated=last_updated,
    )


OFFSETS = st.sampled_from(
    [UTC, timezone(timedelta(hours=10)), timezone(timedelta(hours=-5, minutes=-30))]
)


@given(
    st.datetimes(
        min_value=datetime(1971, 1, 1), max_value=datetime(2199, 12, 31), timezones=OFFSETS
    )
)
def test_datetime_round_trips_as_utc_milliseconds_when_dumped_and_parsed(value: datetime) -> None:
    built = make_connector(value)
    text = built.model_dump_json(exclude_none=True)
    stamp = json.loads(text)["last_updated"]
    assert WIRE_DATETIME.match(stamp)
    assert Connector.model_validate_json(text) == built
    expected = value.astimezone(UTC)
    assert built.last_updated == expected.replace(microsecond=expected.microsecond // 1000 * 1000)
    assert built.last_updated.tzinfo is UTC


def test_datetime_is_refused_when_naive() -> None:
    with pytest.raises(ValidationError, match="naive") as exc:
        make_connector(datetime(2024, 1, 31, 12, 0))
    assert error_locations(exc) == [("last_updated",)]


@pytest.mark.parametrize("value", [1706702400, "", "31/01/2024 12:00"])
def test_datetime_is_refused_when_not_rfc3339_text_or_datetime(value: Any) -> None:
    with pytest.raises(ValidationError) as exc:
        make_connector(value)
    assert error_locations(exc) == [("last_updated",)]


def test_datetime_is_converted_to_utc_when_text_has_an_offset() -> None:
    built = make_connector("2024-01-31T14:00:00+02:00")
    assert built.last_updated == datetime(2024, 1, 31, 12, 0, tzinfo=UTC)
    assert '"last_updated":"2024-01-31T12:00:00.000Z"' in built.model_dump_json()


# --- GeoLocation, enums, JSON output ---------------------------------------------------------


def test_geolocation_keeps_the_text_when_valid() -> None:
    point = GeoLocation(latitude="-33.868820", longitude="151.209296")
    assert point.model_dump_json() == '{"latitude":"-33.868820","longitude":"151.209296"}'


def test_connector_types_are_the_spec_values_when_listed() -> None:
    values = {member.value for member in ConnectorType}
    assert len(values) == 40
    assert {f"DOMESTIC_{letter}" for letter in "ABCDEFGHIJKLMNO"} <= values
    assert {"IEC_60309_2_single_16", "IEC_60309_2_three_64", "CHAOJI", "NEMA_14_50"} <= values
    assert [member.value for member in PowerType] == [
        "AC_1_PHASE",
        "AC_2_PHASE",
        "AC_2_PHASE_SPLIT",
        "AC_3_PHASE",
        "DC",
    ]


def test_optional_fields_are_omitted_when_dumped_without_none() -> None:
    text = make_connector("2024-01-31T12:00:00Z").model_dump_json(exclude_none=True)
    assert json.loads(text) == {
        "id": "1",
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 16,
        "last_updated": "2024-01-31T12:00:00.000Z",
    }


def test_connector_is_accepted_when_built_from_plain_dict() -> None:
    assert Connector.model_validate(connector(max_electric_power=11000)).max_electric_power == 11000


def test_location_is_immutable_when_built() -> None:
    location = Location.model_validate(valid_location())
    with pytest.raises(ValidationError):
        location.publish = False  # type: ignore[misc]


# --- PATCH bodies ----------------------------------------------------------------------------


def test_status_patch_matches_spec_example_when_built() -> None:
    example = load("location_patch_example_status.json")
    body = evse_status_patch(Status.CHARGING, parse_datetime(example["last_updated"]))
    assert body == {"status": "CHARGING", "last_updated": "2019-06-24T12:39:09.000Z"}
    assert body.keys() == example.keys()
    assert parse_datetime(body["last_updated"]) == parse_datetime(example["last_updated"])


def test_status_patch_is_in_utc_when_time_has_an_offset() -> None:
    moment = datetime(2019, 6, 24, 14, 39, 9, tzinfo=timezone(timedelta(hours=2)))
    assert evse_status_patch(Status.REMOVED, moment) == {
        "status": "REMOVED",
        "last_updated": "2019-06-24T12:39:09.000Z",
    }


def test_status_patch_is_refused_when_time_is_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        evse_status_patch(Status.AVAILABLE, datetime(2019, 6, 24, 12, 39, 9))
