"""Compile an OCPP JSON schema (draft 4) into a plain-Python predicate.

``compile_check(schema)`` returns a function that answers True only for payloads that
``jsonschema``'s ``Draft4Validator`` (without a format checker, as ``ocpp.messages.get_validator``
builds it) accepts. It is a fast pre-check: False means "not known to be valid" and the caller
then asks jsonschema, which stays the authority for error messages and codes. A predicate that
cannot be exact answers False (dict subclasses, odd values that make an operator raise).

Supported keywords, with jsonschema's draft-4 semantics (each applies only to instances of the
type it is about): ``type`` (a name or a list of names), ``properties``, ``required``,
``additionalProperties`` (a boolean), ``enum`` (strings only), ``minLength``/``maxLength``,
``minimum``/``maximum`` with boolean ``exclusiveMinimum``/``exclusiveMaximum``, ``multipleOf``,
``items`` (one schema), ``additionalItems`` (ignored, as jsonschema does when ``items`` is one
schema or absent), ``minItems``/``maxItems`` and ``$ref`` of the form ``#/definitions/Name``
(siblings of ``$ref`` are ignored, as in draft 4). Annotations are ignored, ``format`` included
(jsonschema checks formats only with a format checker). Any other keyword or form makes
``compile_check`` return None.

Draft 4 reminders: ``integer`` is an ``int`` that is not a ``bool`` (``1.0`` is not an integer);
``number`` is any ``numbers.Number`` that is not a ``bool`` (``Decimal`` included).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Mapping
from decimal import Decimal
from fractions import Fraction
from typing import Any

Check = Callable[[Any], bool]

_IGNORED = frozenset(
    {
        "$schema",
        "$id",
        "id",
        "title",
        "description",
        "comment",
        "javaType",
        "default",
        "definitions",
        "format",
    }
)
_SUPPORTED = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "enum",
        "maxLength",
        "minLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "items",
        "additionalItems",
        "minItems",
        "maxItems",
    }
)
_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
_REF_PREFIX = "#/definitions/"
_Number = numbers.Number


class _Unsupported(Exception):
    """The schema uses something this compiler does not reproduce exactly."""


def compile_check(schema: Mapping[str, Any]) -> Check | None:
    """A predicate that is True only for payloads valid under ``schema``; None if unsupported."""
    try:
        root = _Compiler(schema).node(schema, is_root=True)
    except (_Unsupported, RecursionError):
        return None

    def check(payload: Any) -> bool:
        try:
            return root(payload)
        except Exception:  # whatever jsonschema makes of it, it is not known to be valid
            return False

    return check


# --- type predicates (draft 4) ---------------------------------------------------------------


def _always(x: Any) -> bool:
    return True


def _never(x: Any) -> bool:
    return False


def _is_string(x: Any) -> bool:
    return isinstance(x, str)


def _is_integer(x: Any) -> bool:
    t = type(x)
    return t is int or (t is not bool and isinstance(x, int))


def _is_number(x: Any) -> bool:
    t = type(x)
    return t is float or t is int or (t is not bool and isinstance(x, _Number))


def _is_boolean(x: Any) -> bool:
    return x is True or x is False


def _is_null(x: Any) -> bool:
    return x is None


def _is_object(x: Any) -> bool:
    return isinstance(x, dict)


def _is_array(x: Any) -> bool:
    return isinstance(x, list)


_TYPE_CHECKS: dict[str, Check] = {
    "object": _is_object,
    "array": _is_array,
    "string": _is_string,
    "integer": _is_integer,
    "number": _is_number,
    "boolean": _is_boolean,
    "null": _is_null,
}


def _all_of(checks: list[Check]) -> Check:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    if len(checks) == 2:
        first, second = checks

        def both(x: Any) -> bool:
            return first(x) and second(x)

        return both
    frozen = tuple(checks)

    def every(x: Any) -> bool:
        for c in frozen:  # noqa: SIM110 (a plain loop is faster than all() over a generator)
            if not c(x):
                return False
        return True

    return every


def _count(schema: Mapping[str, Any], key: str) -> int | None:
    value = schema.get(key)
    if value is None:
        return None
    if type(value) is not int or value < 0:
        raise _Unsupported(key)
    return value


def _bound(schema: Mapping[str, Any], key: str) -> Any:
    value = schema.get(key)
    if value is None:
        return None
    if type(value) not in (int, float, Decimal):
        raise _Unsupported(key)
    return value


def _flag(schema: Mapping[str, Any], key: str) -> bool:
    value = schema.get(key, False)
    if type(value) is not bool:
        raise _Unsupported(key)
    return value


# --- keyword groups ----------------------------------------------------------------------------
# Each builder returns None when the node has none of its keywords, else a closure that first
# checks the instance has the group's type (False if not) and then applies only the keywords
# present.


def _string_checks(schema: Mapping[str, Any], enum: frozenset[str] | None) -> Check | None:
    min_len = _count(schema, "minLength")
    max_len = _count(schema, "maxLength")
    if enum is not None:
        if min_len is None and max_len is None:

            def in_enum(x: Any) -> bool:
                return isinstance(x, str) and x in enum

            return in_enum
        lo = min_len or 0
        hi = max_len

        def in_enum_sized(x: Any) -> bool:
            if not isinstance(x, str) or x not in enum:
                return False
            n = len(x)
            return n >= lo and (hi is None or n <= hi)

        return in_enum_sized
    if max_len is not None and min_len is None:
        top = max_len

        def short_enough(x: Any) -> bool:
            return isinstance(x, str) and len(x) <= top

        return short_enough
    if min_len is not None:
        low = min_len
        high = max_len

        def sized(x: Any) -> bool:
            if not isinstance(x, str):
                return False
            n = len(x)
            return n >= low and (high is None or n <= high)

        return sized
    return None


def _number_keyword_checks(schema: Mapping[str, Any]) -> list[Check]:
    """The number keywords of a node, each assuming the instance is a draft-4 number."""
    checks: list[Check] = []
    minimum = _bound(schema, "minimum")
    maximum = _bound(schema, "maximum")
    exclusive_min = _flag(schema, "exclusiveMinimum")
    exclusive_max = _flag(schema, "exclusiveMaximum")
    multiple = _bound(schema, "multipleOf")
    if minimum is not None:
        lo = minimum
        if exclusive_min:

            def above(x: Any) -> bool:
                return not x <= lo

            checks.append(above)
        else:

            def at_least(x: Any) -> bool:
                return not x < lo

            checks.append(at_least)
    if maximum is not None:
        hi = maximum
        if exclusive_max:

            def below(x: Any) -> bool:
                return not x >= hi

            checks.append(below)
        else:

            def at_most(x: Any) -> bool:
                return not x > hi

            checks.append(at_most)
    if multiple is not None:
        step = multiple
        if isinstance(step, float):

            def float_multiple(x: Any) -> bool:
                # jsonschema: quotient = instance / dB; failed = int(quotient) != quotient,
                # falling back to exact fractions when the quotient overflows.
                quotient = x / step
                try:
                    return bool(int(quotient) == quotient)
                except OverflowError:
                    return (Fraction(x) / Fraction(step)).denominator == 1

            checks.append(float_multiple)
        else:

            def exact_multiple(x: Any) -> bool:
                return not x % step

            checks.append(exact_multiple)
    return checks


def _number_checks(schema: Mapping[str, Any], integer: bool) -> Check | None:
    keywords = _number_keyword_checks(schema)
    if not keywords:
        return None
    is_type = _is_integer if integer else _is_number
    if len(keywords) == 1:
        only = keywords[0]
        if integer:

            def integer_and(x: Any) -> bool:
                t = type(x)
                if t is not int and (t is bool or not isinstance(x, int)):
                    return False
                return only(x)

            return integer_and

        def number_and(x: Any) -> bool:
            t = type(x)
            if t is not float and t is not int and (t is bool or not isinstance(x, _Number)):
                return False
            return only(x)

        return number_and
    rest = _all_of(keywords)

    def typed_and_all(x: Any) -> bool:
        return is_type(x) and rest(x)

    return typed_and_all


class _Compiler:
    def __init__(self, root: Mapping[str, Any]) -> None:
        self._root = root
        self._done: dict[str, Check] = {}
        self._pending: dict[str, list[Check]] = {}

    def node(self, schema: Any, *, is_root: bool = False) -> Check:
        if schema is True:
            return _always
        if schema is False:
            return _never
        if not isinstance(schema, Mapping):
            raise _Unsupported(repr(schema)[:40])
        if "$ref" in schema and schema["$ref"] is not None:
            return self._ref(schema["$ref"])
        unknown = schema.keys() - _SUPPORTED - _IGNORED
        if unknown:
            raise _Unsupported(", ".join(sorted(map(str, unknown))))
        if not is_root and ("id" in schema or "$id" in schema):
            raise _Unsupported("id below the root")  # would change how $ref resolves
        return self._typed(schema)

    def _ref(self, ref: Any) -> Check:
        if not isinstance(ref, str) or not ref.startswith(_REF_PREFIX):
            raise _Unsupported(f"$ref {ref!r}")
        name = ref[len(_REF_PREFIX) :]
        if not name or any(c in name for c in "/~%#"):
            raise _Unsupported(f"$ref {ref!r}")
        done = self._done.get(name)
        if done is not None:
            return done
        pending = self._pending.get(name)
        if pending is not None:  # a definition that refers to itself: look it up when called
            slot = pending

            def late(x: Any) -> bool:
                return slot[0](x)

            return late
        definitions = self._root.get("definitions")
        if not isinstance(definitions, Mapping) or name not in definitions:
            raise _Unsupported(f"$ref {ref!r}")
        cell: list[Check] = [_never]
        self._pending[name] = cell
        check = self.node(definitions[name])
        cell[0] = check
        del self._pending[name]
        self._done[name] = check
        return check

    def _types(self, schema: Mapping[str, Any]) -> frozenset[str] | None:
        if "type" not in schema:
            return None
        value = schema["type"]
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names:
            raise _Unsupported("type")
        for name in names:
            if not isinstance(name, str) or name not in _TYPES:
                raise _Unsupported(f"type {name!r}")
        return frozenset(names)

    def _enum(self, schema: Mapping[str, Any]) -> frozenset[str] | None:
        if "enum" not in schema:
            return None
        values = schema["enum"]
        if not isinstance(values, list) or not all(type(v) is str for v in values):
            raise _Unsupported("enum")
        return frozenset(values)

    def _object_checks(self, schema: Mapping[str, Any]) -> Check | None:
        has_props = "properties" in schema
        has_required = "required" in schema
        has_additional = "additionalProperties" in schema
        if not (has_props or has_required or has_additional):
            return None
        props = schema.get("properties", {})
        if not isinstance(props, Mapping):
            raise _Unsupported("properties")
        checks = {name: self.node(sub) for name, sub in props.items()}
        required_list = schema.get("required", [])
        if not isinstance(required_list, list) or not all(type(r) is str for r in required_list):
            raise _Unsupported("required")
        required = frozenset(required_list)
        additional = schema.get("additionalProperties", True)
        if type(additional) is not bool:
            raise _Unsupported("additionalProperties")  # a schema for extra properties
        get = checks.get
        closed = not additional
        # Dict subclasses answer False: jsonschema reads them through `in`, `[]` and iteration,
        # which a subclass may redefine differently from `.items()`.
        if closed:

            def closed_object(x: Any) -> bool:
                if type(x) is not dict or not x.keys() >= required:
                    return False
                for k, v in x.items():
                    c = get(k)
                    if c is None or not c(v):
                        return False
                return True

            return closed_object

        def open_object(x: Any) -> bool:
            if type(x) is not dict or not x.keys() >= required:
                return False
            for k, v in x.items():
                c = get(k)
                if c is not None and not c(v):
                    return False
            return True

        return open_object

    def _array_checks(self, schema: Mapping[str, Any]) -> Check | None:
        min_items = _count(schema, "minItems")
        max_items = _count(schema, "maxItems")
        item: Check | None = None
        if "items" in schema:
            items = schema["items"]
            if not isinstance(items, dict):
                # A list of schemas; or a boolean, which draft-4 jsonschema tries to zip with.
                raise _Unsupported("items")
            item = self.node(items)
        # `additionalItems` never applies when `items` is one schema or absent.
        if item is None and min_items is None and max_items is None:
            return None
        lo = min_items or 0
        hi = max_items
        each = item
        if each is None:

            def sized(x: Any) -> bool:
                if not isinstance(x, list):
                    return False
                n = len(x)
                return n >= lo and (hi is None or n <= hi)

            return sized

        def array(x: Any) -> bool:
            if not isinstance(x, list):
                return False
            n = len(x)
            if n < lo or (hi is not None and n > hi):
                return False
            return all(map(each, x))

        return array

    def _typed(self, schema: Mapping[str, Any]) -> Check:
        types = self._types(schema)
        enum = self._enum(schema)
        obj = self._object_checks(schema)
        arr = self._array_checks(schema)
        text = _string_checks(schema, enum)
        number = _number_checks(schema, integer=False)
        if types is not None and len(types) == 1:
            (only,) = types
            if enum is not None and only != "string":
                return _never  # an instance of another type never equals a string
            group = {
                "object": obj,
                "array": arr,
                "string": text,
                "integer": _number_checks(schema, integer=True),
                "number": number,
            }.get(only)
            return group if group is not None else _TYPE_CHECKS[only]
        # No type, or several: every group's keywords apply to its own type only.
        checks: list[Check] = []
        if types is not None:
            type_checks = tuple(_TYPE_CHECKS[name] for name in sorted(types))

            def any_type(x: Any) -> bool:
                for c in type_checks:  # noqa: SIM110 (faster than any() over a generator)
                    if c(x):
                        return True
                return False

            checks.append(any_type)
        if enum is not None:
            checks.append(text if text is not None else _is_string)
        elif text is not None:
            checks.append(_when(_is_string, text))
        if obj is not None:
            checks.append(_when(_is_object, obj))
        if arr is not None:
            checks.append(_when(_is_array, arr))
        if number is not None:
            checks.append(_when(_is_number, number))
        return _all_of(checks)


def _when(applies: Check, check: Check) -> Check:
    """``check`` for instances that ``applies`` to; anything else passes."""

    def guarded(x: Any) -> bool:
        return check(x) if applies(x) else True

    return guarded
