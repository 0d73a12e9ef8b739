"""The event log's codec: every domain event survives a round trip, and the encoders built from
the type hints give what the generic walk (``to_jsonable``) gives."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csms.domain.codec import decode_event, encode_event, event_type_name, to_jsonable
from csms.domain.events import EVENT_TYPES, DomainEvent, MeterValuesSampled
from csms.domain.model import EvseRef, MeterReading

AT = datetime(2026, 11, 22, 1, 30, 5, 250_000, tzinfo=UTC)


def _values(hint: Any) -> st.SearchStrategy[Any]:
    """Values of the type ``hint`` as domain events hold them (aware UTC times)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(_values(arg) for arg in typing.get_args(hint)))
    if origin is tuple:
        return st.lists(_values(typing.get_args(hint)[0]), max_size=3).map(tuple)
    if hint is type(None):
        return st.none()
    if hint is datetime:
        return st.datetimes(timezones=st.just(UTC))
    if hint is Decimal:
        return st.decimals(allow_nan=False, allow_infinity=False, places=3)
    if dataclasses.is_dataclass(hint):
        hints = typing.get_type_hints(hint)
        fields = {f.name: _values(hints[f.name]) for f in dataclasses.fields(hint)}
        return st.builds(hint, **fields)
    return st.from_type(hint)


_EVENTS = st.one_of(*(_values(cls) for cls in EVENT_TYPES))


@settings(max_examples=300)
@given(_EVENTS)
def test_every_event_round_trips_and_encodes_as_the_generic_walk_does(event: DomainEvent):
    encoded = encode_event(event)
    assert encoded == to_jsonable(event)
    assert list(encoded) == [f.name for f in dataclasses.fields(event)]  # the fields' order
    text = json.dumps(encoded)
    assert decode_event(event_type_name(event), json.loads(text)) == event


def _meter_values(sampled_at: datetime) -> MeterValuesSampled:
    return MeterValuesSampled(
        charger_id="CP1",
        occurred_at=AT,
        evse=EvseRef(ocpp_evse_id=1, connector_id=1),
        transaction_ref="7",
        readings=(
            MeterReading(
                sampled_at=sampled_at,
                measurand="Energy.Active.Import.Register",
                value=Decimal("1450.5"),
                unit="Wh",
            ),
        ),
        energy_wh=450,
    )


def test_a_meter_value_is_encoded_with_text_for_times_and_decimals():
    encoded = encode_event(_meter_values(AT))
    assert encoded["occurred_at"] == "2026-11-22T01:30:05.250000+00:00"
    assert encoded["evse"] == {"ocpp_evse_id": 1, "connector_id": 1}
    (reading,) = encoded["readings"]
    assert reading["value"] == "1450.5"
    assert reading["context"] == "Sample.Periodic"
    assert reading["signed"] is None


def test_a_naive_time_nested_in_an_event_is_refused():
    with pytest.raises(ValueError, match="naive datetime"):
        encode_event(_meter_values(datetime(2026, 11, 22, 1, 30)))


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Loose:
    either: str | int
    anything: Any
    pairs: tuple[int, str]


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Holder(DomainEvent):
    loose: _Loose


def test_fields_whose_hints_name_no_one_kind_are_encoded_by_the_generic_walk():
    event = _Holder(
        charger_id="CP1",
        occurred_at=AT,
        loose=_Loose(either=3, anything=Decimal("1.5"), pairs=(1, "a")),
    )
    assert encode_event(event)["loose"] == {"either": 3, "anything": "1.5", "pairs": [1, "a"]}
