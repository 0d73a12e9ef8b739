"""Round-trip domain events to JSON-compatible dicts (for the event log).

Pure and generic: walks the dataclass fields and their type hints, so a new event type only
needs to be listed in ``EVENT_TYPES``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
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


def to_jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
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


def encode_event(event: DomainEvent) -> dict[str, Any]:
    encoded: dict[str, Any] = to_jsonable(event)
    return encoded


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
    if value is None:
        return None
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [arg for arg in typing.get_args(tp) if arg is not type(None)]
        return _from_jsonable(options[0], value)
    if origin is tuple:
        item_type = typing.get_args(tp)[0]
        return tuple(_from_jsonable(item_type, item) for item in value)
    if isinstance(tp, type):
        if dataclasses.is_dataclass(tp):
            hints = _hints(tp)
            kwargs = {
                f.name: _from_jsonable(hints[f.name], value[f.name])
                for f in dataclasses.fields(tp)
                if f.name in value
            }
            return tp(**kwargs)
        if issubclass(tp, Enum):
            return tp(value)
        if tp is datetime:
            return datetime.fromisoformat(value)
        if tp is Decimal:
            return Decimal(value)
    return value
