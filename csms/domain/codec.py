"""Round-trip domain events to JSON-compatible dicts (for the event log).

Pure and generic: walks the dataclass fields and their type hints, so a new event type only
needs to be listed in ``EVENT_TYPES``. Both directions are built once per type from the type
hints (an event is encoded for every message a charger sends, and a walk deciding each value's
kind as it goes cost about 40 % more: 10 against 7 µs for a meter value of two readings);
``to_jsonable`` is that walk, for the hints the builders do not know.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any

from csms.domain.events import EVENT_TYPES, DomainEvent

_BY_NAME: dict[str, type[DomainEvent]] = {cls.__name__: cls for cls in EVENT_TYPES}


class UnknownEventType(ValueError):
    pass


def event_type_name(event: DomainEvent) -> str:
    return type(event).__name__


_PLAIN = frozenset({str, int, bool, float, type(None)})


def to_jsonable(value: Any) -> Any:
    kind: Any = type(value)
    if kind in _PLAIN:
        return value
    names = _field_names(kind)
    if names is not None:
        return {name: to_jsonable(getattr(value, name)) for name in names}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime in a domain event")
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple | list):
        return [to_jsonable(item) for item in value]
    return value


@cache
def _field_names(kind: type) -> tuple[str, ...] | None:
    """The fields of a dataclass, None for any other type (looked up once per type)."""
    if dataclasses.is_dataclass(kind):
        return tuple(f.name for f in dataclasses.fields(kind))
    return None


def encode_event(event: DomainEvent) -> dict[str, Any]:
    kind: Any = type(event)
    encoded: dict[str, Any] = _encoder(kind)(event)
    return encoded


_Encode = Callable[[Any], Any]


@cache
def _encoder(tp: Any) -> _Encode:
    """The function turning a value of type ``tp`` into JSON, built once per type from the
    type hints (``None`` stays ``None`` at every level; a value of a type the hints do not
    describe goes through ``to_jsonable``)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        if len(options) != 1:
            return to_jsonable
        inner = _encoder(options[0])
        if inner is _same:
            return _same
        return lambda value: None if value is None else inner(value)
    if origin is tuple:
        args = typing.get_args(tp)
        if len(args) != 2 or args[1] is not Ellipsis:
            return to_jsonable
        item = _encoder(args[0])
        if item is _same:
            return list
        return lambda value: [item(x) for x in value]
    if isinstance(tp, type):
        if tp in _PLAIN:
            return _same
        if dataclasses.is_dataclass(tp):
            return _dataclass_encoder(tp)
        if issubclass(tp, Enum):
            return _enum_value
        if tp is datetime:
            return _datetime_text
        if tp is Decimal:
            return str
    return to_jsonable


def _dataclass_encoder(cls: type) -> _Encode:
    hints = _hints(cls)
    fields = tuple((f.name, _encoder(hints[f.name])) for f in dataclasses.fields(cls))

    def encode(value: Any) -> Any:
        if type(value) is not cls:  # a subclass or another type: its own fields
            return to_jsonable(value)
        return {name: convert(getattr(value, name)) for name, convert in fields}

    return encode


def _enum_value(value: Enum) -> Any:
    return value.value


def _datetime_text(value: datetime) -> str:
    if value.tzinfo is None:
        raise ValueError("naive datetime in a domain event")
    return value.isoformat()


def decode_event(type_name: str, payload: dict[str, Any]) -> DomainEvent:
    cls = _BY_NAME.get(type_name)
    if cls is None:
        raise UnknownEventType(type_name)
    decoded: DomainEvent = _from_jsonable(cls, payload)
    return decoded


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_jsonable(tp: Any, value: Any) -> Any:
    return _decoder(tp)(value)


_Decode = Callable[[Any], Any]


@cache
def _decoder(tp: Any) -> _Decode:
    """The function turning JSON of type ``tp`` back into its value, built once per type from
    the type hints (``None`` stays ``None`` at every level)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return _decoder(options[0])
    if origin is tuple:
        item = _decoder(typing.get_args(tp)[0])
        return lambda value: None if value is None else tuple(item(x) for x in value)
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            return _dataclass_decoder(tp)
        if issubclass(tp, Enum):
            enum: type[Enum] = tp
            return lambda value: None if value is None else enum(value)
        if tp is datetime:
            return lambda value: None if value is None else datetime.fromisoformat(value)
        if tp is Decimal:
            return lambda value: None if value is None else Decimal(value)
    return _same


def _dataclass_decoder(cls: type) -> _Decode:
    hints = _hints(cls)
    fields = [(f.name, _decoder(hints[f.name])) for f in dataclasses.fields(cls)]

    def decode(value: Any) -> Any:
        if value is None:
            return None
        return cls(**{name: convert(value[name]) for name, convert in fields if name in value})

    return decode


def _same(value: Any) -> Any:
    return value
