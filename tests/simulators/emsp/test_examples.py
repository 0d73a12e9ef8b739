"""The OCPI spec's example payloads against the simulator's models (no server needed)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from simulators.emsp.models import (
    CDR,
    EVSE,
    Credentials,
    Hours,
    Location,
    Session,
    Tariff,
    Token,
    VersionDetails,
    dump,
)

EXAMPLES = Path(__file__).parents[2] / "data" / "ocpi-examples"


def load(relative: str) -> Any:
    return json.loads((EXAMPLES / relative).read_text(), parse_float=Decimal)


def names(pattern: str, *, exclude: tuple[str, ...] = ()) -> list[str]:
    if not EXAMPLES.is_dir():
        return []
    found = sorted(p.relative_to(EXAMPLES).as_posix() for p in EXAMPLES.glob(pattern))
    return [name for name in found if Path(name).name not in exclude]


VALID: list[tuple[type[BaseModel], str]] = [
    *((Location, n) for n in names("locations/location_example*.json")),
    *((Session, n) for n in names("sessions/session_example_*.json")),
    *((CDR, n) for n in names("cdrs/*.json")),
    *((Tariff, n) for n in names("tariffs/tariff*.json", exclude=("tariff_put_example.json",))),
    *((Token, n) for n in names("tokens/token_example_*.json")),
    *((Token, n) for n in names("tokens/token_put_example.json")),
    *((Credentials, n) for n in names("credentials/*.json")),
    *((Hours, n) for n in names("locations/location_hours_*.json")),
    *((VersionDetails, n) for n in names("versions/version_details_example*.json")),
]


@pytest.mark.parametrize(("model", "name"), VALID, ids=[n for _, n in VALID])
def test_spec_example_validates_and_round_trips_when_it_is_correct(
    model: type[BaseModel], name: str
) -> None:
    payload = load(name)
    parsed = model.model_validate(payload)
    # Dumped back to JSON, the object is the same as the example (numbers compared by value).
    assert json.loads(json.dumps(dump(parsed)), parse_float=Decimal) == payload


def test_session_example_keeps_the_wh_sized_energy_values_when_parsed() -> None:
    session = Session.model_validate(load("sessions/session_example_2_short_finished.json"))
    periods = session.charging_periods or []
    assert periods[1].dimensions[0].volume == Decimal(41000)  # spec quirk, accepted as a number


def test_tariff_put_example_is_rejected_when_last_updated_is_missing() -> None:
    with pytest.raises(ValidationError) as error:
        Tariff.model_validate(load("tariffs/tariff_put_example.json"))
    assert [e["loc"] for e in error.value.errors()] == [("last_updated",)]


def test_evse_put_example_is_rejected_when_its_connector_lacks_required_fields() -> None:
    with pytest.raises(ValidationError) as error:
        EVSE.model_validate(load("locations/location_put_example_add_evse.json"))
    problems = {e["loc"][-1] for e in error.value.errors()}
    assert {"power_type", "max_voltage", "max_amperage", "last_updated"} <= problems
    assert "floor" in problems  # unknown field (the spec field is floor_level)


@pytest.mark.parametrize(
    ("target", "patch"),
    [
        ("locations/location_example.json", "locations/location_patch_example_location.json"),
    ],
)
def test_location_patch_example_applies_when_merged_into_the_example(
    target: str, patch: str
) -> None:
    merged = {**load(target), **load(patch)}
    assert Location.model_validate(merged).name == "Interparking Gent Zuid"


@pytest.mark.parametrize(
    "patch",
    [
        "locations/location_patch_example_status.json",
        "locations/location_patch_example_remove_evse.json",
    ],
)
def test_evse_patch_example_applies_when_merged_into_an_example_evse(patch: str) -> None:
    evse = load("locations/location_example.json")["evses"][0]
    EVSE.model_validate({**evse, **load(patch)})


def test_session_patch_examples_apply_when_merged_into_the_example() -> None:
    session = load("sessions/session_example_1_simple_start.json")
    for patch in (
        "session_patch_example_total_cost.json",
        "session_patch_example_charging_period.json",
    ):
        session = {**session, **load(f"sessions/{patch}")}
    assert Session.model_validate(session).kwh == Decimal("15.00")
