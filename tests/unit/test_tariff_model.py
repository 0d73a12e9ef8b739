"""OCPI 2.2.1 Tariff objects: every spec example parses and round-trips, OCPI JSON output, and
the refusals of the strict model.

Defect of the spec examples (tests/data/ocpi-examples/README.md): ``tariff_put_example.json``
lacks ``last_updated``. It is **refused**: a PUT carries the full object (reference 1.7) and
``last_updated`` is required in a Tariff; the CPO is the only party that builds Tariffs here,
so a separate, laxer "PUT body" model would only let incomplete Tariffs reach the eMSPs. The
same body with ``last_updated`` added is accepted.
"""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.ocpi.tariffs import (
    DayOfWeek,
    PriceComponent,
    Tariff,
    TariffDimensionType,
    TariffElement,
    TariffRestrictions,
)
from bridge.ocpi.wire import format_datetime, parse_datetime

EXAMPLES = Path(__file__).parents[1] / "data" / "ocpi-examples" / "tariffs"
ALL_EXAMPLES = sorted(path.name for path in EXAMPLES.glob("*.json"))
PUT_EXAMPLE = "tariff_put_example.json"
FULL_TARIFFS = [name for name in ALL_EXAMPLES if name != PUT_EXAMPLE]
DATETIME_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def load(name: str) -> Any:
    return json.loads((EXAMPLES / name).read_text(encoding="utf-8"))


def wire_form(value: Any) -> Any:
    """The example with its DateTimes in the form we emit (``...000Z``)."""
    if isinstance(value, dict):
        return {key: wire_form(item) for key, item in value.items()}
    if isinstance(value, list):
        return [wire_form(item) for item in value]
    if isinstance(value, str) and DATETIME_TEXT.match(value):
        return format_datetime(parse_datetime(value))
    return value


def a_tariff() -> dict[str, Any]:
    """tariff_4_complex: every kind of component and most restrictions."""
    data: dict[str, Any] = copy.deepcopy(load("tariff_4_complex.json"))
    return data


def set_path(data: Any, path: tuple[int | str, ...], value: Any) -> None:
    for key in path[:-1]:
        data = data[key]
    data[path[-1]] = value


def restrictions(**fields: Any) -> dict[str, Any]:
    data = a_tariff()
    data["elements"] = [
        {
            "price_components": [{"type": "TIME", "price": 1, "step_size": 1}],
            "restrictions": fields,
        }
    ]
    return data


# --- spec examples ---------------------------------------------------------------------------


def test_all_twenty_examples_are_found_when_listing_the_tariffs_folder() -> None:
    assert len(ALL_EXAMPLES) == 20
    assert PUT_EXAMPLE in ALL_EXAMPLES


@pytest.mark.parametrize("name", FULL_TARIFFS)
def test_json_is_the_example_itself_when_spec_example_is_dumped(name: str) -> None:
    # Same field names, order, enums and nesting; numbers compare equal as JSON numbers
    # (0.50 == 0.5, 20.0 == 20); DateTimes become millisecond UTC "Z" text.
    original = load(name)
    tariff = Tariff.model_validate(original)
    dumped = json.loads(tariff.model_dump_json(exclude_none=True))
    assert dumped == wire_form(original)
    assert list(dumped) == list(original)
    assert Tariff.model_validate(dumped) == tariff
    assert Tariff.model_validate_json(tariff.model_dump_json(exclude_none=True)) == tariff


@pytest.mark.parametrize("name", FULL_TARIFFS)
def test_prices_are_decimals_when_spec_example_is_parsed(name: str) -> None:
    tariff = Tariff.model_validate_json((EXAMPLES / name).read_text(encoding="utf-8"))
    for element in tariff.elements:
        for component in element.price_components:
            assert isinstance(component.price, Decimal)
            assert component.vat is None or isinstance(component.vat, Decimal)


def test_put_example_is_refused_when_last_updated_is_missing() -> None:
    with pytest.raises(ValidationError) as exc:
        Tariff.model_validate(load(PUT_EXAMPLE))
    assert [tuple(error["loc"]) for error in exc.value.errors()] == [("last_updated",)]


def test_put_example_parses_when_last_updated_is_added() -> None:
    body = load(PUT_EXAMPLE) | {"last_updated": "2015-06-29T20:39:09Z"}
    tariff = Tariff.model_validate(body)
    assert tariff.elements[0].price_components[0].step_size == 300


def test_complex_example_reads_restrictions_when_parsed() -> None:
    tariff = Tariff.model_validate(a_tariff())
    weekend = tariff.elements[3].restrictions
    assert weekend is not None
    assert weekend.min_current == Decimal(32)
    assert weekend.day_of_week == [DayOfWeek.SATURDAY, DayOfWeek.SUNDAY]
    saturday = tariff.elements[5].restrictions
    assert saturday is not None
    assert (saturday.start_time, saturday.end_time) == ("10:00", "17:00")


def test_omitted_fields_stay_out_when_dumped() -> None:
    text = Tariff.model_validate(load("tariff_8_simple_025kwh.json")).model_dump_json(
        exclude_none=True
    )
    assert "null" not in text
    assert '"price":0.25' in text
    assert '"vat":10' in text
    assert '"last_updated":"2018-12-17T11:16:55.000Z"' in text


# --- accepted edge cases ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"start_time": "00:00", "end_time": "00:00"},  # whole day
        {"start_time": "20:00", "end_time": "00:00"},  # until the end of the day
        {"start_time": "22:00", "end_time": "06:00"},  # wraps midnight
        {"end_time": "08:00"},
        {"start_date": "2024-02-29", "end_date": "2024-03-01"},  # leap day
        {"day_of_week": []},  # restricts nothing
        {"min_duration": 0, "max_duration": 1},
        {"min_kwh": 0, "max_kwh": "0.5"},  # numbers may come as text
        {"reservation": "RESERVATION_EXPIRES"},
        {},
    ],
)
def test_restrictions_parse_when_edge_values(fields: dict[str, Any]) -> None:
    Tariff.model_validate(restrictions(**fields))


def test_step_size_zero_means_no_rounding_when_free_tariff() -> None:
    tariff = Tariff.model_validate(load("tariff_5_free_of_charge.json"))
    assert tariff.elements[0].price_components[0].step_size == 0


def test_datetime_without_zone_is_utc_when_text() -> None:
    data = a_tariff() | {"last_updated": "2024-03-01T10:00:00"}
    assert Tariff.model_validate(data).last_updated == datetime(2024, 3, 1, 10, tzinfo=UTC)


def test_offsets_are_normalized_to_utc_when_aware_datetimes() -> None:
    data = a_tariff() | {
        "start_date_time": datetime(2024, 3, 1, 12, tzinfo=timezone(timedelta(hours=2))),
        "last_updated": "2024-03-01T10:00:00+01:00",
    }
    tariff = Tariff.model_validate(data)
    assert tariff.start_date_time == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert tariff.model_dump(mode="json")["last_updated"] == "2024-03-01T09:00:00.000Z"


def test_valid_at_includes_start_and_excludes_end() -> None:
    data = a_tariff() | {
        "start_date_time": "2024-01-01T00:00:00Z",
        "end_date_time": "2024-02-01T00:00:00Z",
    }
    tariff = Tariff.model_validate(data)
    assert tariff.valid_at(datetime(2024, 1, 1, tzinfo=UTC))
    assert not tariff.valid_at(datetime(2023, 12, 31, 23, 59, tzinfo=UTC))
    assert not tariff.valid_at(datetime(2024, 2, 1, tzinfo=UTC))


def test_iso_index_counts_from_monday() -> None:
    assert [day.iso_index for day in DayOfWeek] == [0, 1, 2, 3, 4, 5, 6]


def test_models_build_from_python_values_when_constructed_directly() -> None:
    component = PriceComponent(
        type=TariffDimensionType.ENERGY, price=Decimal("0.25"), vat=None, step_size=1
    )
    element = TariffElement(
        price_components=[component], restrictions=TariffRestrictions(max_power=Decimal(16))
    )
    tariff = Tariff(
        country_code="NL",
        party_id="TNM",
        id="T1",
        currency="EUR",
        elements=[element],
        last_updated=datetime(2024, 1, 1, tzinfo=UTC),
    )
    assert json.loads(tariff.model_dump_json(exclude_none=True))["elements"] == [
        {
            "price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}],
            "restrictions": {"max_power": 16},
        }
    ]


# --- refusals, with the field named ----------------------------------------------------------

COMPONENT = ("elements", 1, "price_components", 0)
RESTRICTION = ("elements", 4, "restrictions")


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ((*COMPONENT, "type"), "KWH"),  # unknown dimension type
        ((*COMPONENT, "type"), "energy"),  # enums are case-sensitive
        ((*COMPONENT, "price"), -0.01),  # negative price
        ((*COMPONENT, "price"), "cheap"),
        ((*COMPONENT, "price"), True),
        ((*COMPONENT, "vat"), -1),
        ((*COMPONENT, "step_size"), -1),
        ((*COMPONENT, "step_size"), 1.5),
        ((*COMPONENT, "step_size"), 1.0),  # the spec says int
        ((*COMPONENT, "step_size"), "60"),
        ((*RESTRICTION, "start_time"), "24:00"),
        ((*RESTRICTION, "start_time"), "9:00"),
        ((*RESTRICTION, "start_time"), "09:60"),
        ((*RESTRICTION, "end_time"), "0900"),
        ((*RESTRICTION, "end_time"), "09:00:00"),
        ((*RESTRICTION, "start_date"), "2023-02-30"),  # bad date
        ((*RESTRICTION, "start_date"), "2023-13-01"),
        ((*RESTRICTION, "start_date"), "23-01-01"),
        ((*RESTRICTION, "end_date"), "2023-1-1"),
        ((*RESTRICTION, "min_kwh"), -1),
        ((*RESTRICTION, "max_power"), -0.5),
        ((*RESTRICTION, "min_current"), "lots"),
        ((*RESTRICTION, "min_duration"), -1),
        ((*RESTRICTION, "max_duration"), 1.5),
        ((*RESTRICTION, "day_of_week"), ["MONDAY", "MONDAY"]),
        ((*RESTRICTION, "day_of_week"), ["MON"]),
        ((*RESTRICTION, "reservation"), "RESERVED"),
        (("elements",), []),  # empty elements
        (("elements", 0, "price_components"), []),
        (("currency",), "eur"),
        (("currency",), "EURO"),
        (("id",), "x" * 37),  # over-long id
        (("id",), "tarief-é"),  # CiString is ASCII
        (("country_code",), "DEU"),
        (("party_id",), "AL"),
        (("type",), "CHEAP"),
        (("tariff_alt_url",), "ftp://company.com/tariffs"),
        (("tariff_alt_text",), [{"language": "eng", "text": "2 euro"}]),
        (("last_updated",), "yesterday"),
        (("min_price",), {"excl_vat": -1}),
        (("max_price",), {"excl_vat": 10, "incl_vat": 9}),  # incl below excl
    ],
)
def test_tariff_is_refused_when_a_field_is_invalid(path: tuple[int | str, ...], value: Any) -> None:
    data = a_tariff()
    set_path(data, path, value)
    with pytest.raises(ValidationError):
        Tariff.model_validate(data)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start_time": "10:00", "end_time": "10:00"}, "start_time and end_time"),
        ({"start_date": "2024-03-02", "end_date": "2024-03-02"}, "end_date"),
        ({"start_date": "2024-03-02", "end_date": "2024-03-01"}, "end_date"),
        ({"min_kwh": 10, "max_kwh": 10}, "min_kwh"),
        ({"min_current": 32, "max_current": 16}, "min_current"),
        ({"min_power": 22, "max_power": 11}, "min_power"),
        ({"min_duration": 3600, "max_duration": 1800}, "min_duration"),
    ],
)
def test_restrictions_are_refused_when_they_can_never_match(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Tariff.model_validate(restrictions(**fields))


def test_reservation_element_is_refused_when_it_has_an_energy_component() -> None:
    data = load("tariff_15_reservation_5_euro_per_hour.json")
    data["elements"][0]["price_components"].append(
        {"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 1}
    )
    with pytest.raises(ValidationError, match="only have FLAT and TIME components, not ENERGY"):
        Tariff.model_validate(data)


def test_reservation_element_is_refused_when_it_has_a_parking_component() -> None:
    data = load("tariff_17_reservation_with_expire_fee.json")
    data["elements"][0]["price_components"][0]["type"] = "PARKING_TIME"
    with pytest.raises(ValidationError, match="not PARKING_TIME"):
        Tariff.model_validate(data)


def test_element_is_refused_when_a_dimension_appears_twice() -> None:
    data = load("tariff_9_025kwh_start.json")
    data["elements"][0]["price_components"].append(
        {"type": "ENERGY", "price": 0.30, "step_size": 1}
    )
    with pytest.raises(ValidationError, match="more than one ENERGY"):
        Tariff.model_validate(data)


def test_tariff_is_refused_when_validity_ends_before_it_starts() -> None:
    data = a_tariff() | {
        "start_date_time": "2024-02-01T00:00:00Z",
        "end_date_time": "2024-02-01T00:00:00Z",
    }
    with pytest.raises(ValidationError, match="end_date_time"):
        Tariff.model_validate(data)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ({"excl_vat": 11}, {"excl_vat": 10}),
        ({"excl_vat": 1, "incl_vat": 12}, {"excl_vat": 10, "incl_vat": 11}),
    ],
)
def test_tariff_is_refused_when_min_price_exceeds_max_price(
    low: dict[str, Any], high: dict[str, Any]
) -> None:
    data = a_tariff() | {"min_price": low, "max_price": high}
    with pytest.raises(ValidationError, match="min_price"):
        Tariff.model_validate(data)


def test_tariff_is_refused_when_a_datetime_is_naive() -> None:
    data = a_tariff() | {"last_updated": datetime(2024, 3, 1, 10)}
    with pytest.raises(ValidationError, match="naive"):
        Tariff.model_validate(data)
    with pytest.raises(ValidationError, match="naive"):
        Tariff.model_validate(a_tariff() | {"start_date_time": datetime(2024, 3, 1)})


@pytest.mark.parametrize("field", ["country_code", "party_id", "id", "currency", "elements"])
def test_tariff_is_refused_when_a_required_field_is_missing(field: str) -> None:
    data = a_tariff()
    del data[field]
    with pytest.raises(ValidationError):
        Tariff.model_validate(data)


def test_tariff_is_immutable_when_built() -> None:
    tariff = Tariff.model_validate(a_tariff())
    with pytest.raises(ValidationError):
        tariff.currency = "USD"  # type: ignore[misc]
