"""The compiled schema pre-check agrees with jsonschema's Draft4Validator: every OCPP schema
compiles, generated and mutated payloads get the same verdict, and ``validate()`` still reports
violations with the same CallError codes."""

from __future__ import annotations

import copy
import json
import random
from collections import OrderedDict
from collections.abc import Callable, Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import ocpp
import pytest
from jsonschema import Draft4Validator

from csms.domain.model import OcppVersion
from csms.rpc import schemas
from csms.rpc.frames import RpcError
from csms.rpc.schema_check import compile_check
from csms.rpc.schemas import REQUEST, RESPONSE, SchemaViolation, validate

OCPP_DIR = Path(ocpp.__file__).parent
VERSIONS = ("v16", "v201")
# The 1.6 schemas that `schemas.py` reads with Decimal numbers (their `multipleOf: 0.1`).
DECIMAL_V16 = (
    "SetChargingProfile.json",
    "RemoteStartTransaction.json",
    "GetCompositeScheduleResponse.json",
)
NOW = "2026-11-21T10:00:00Z"


def _schema_files(version: str) -> list[Path]:
    return sorted((OCPP_DIR / version / "schemas").glob("*.json"))


def _load(path: Path, parse_float: Callable[[str], Any] = float) -> dict[str, Any]:
    # As ocpp.messages.get_validator reads them (the 2.0.1 files start with a BOM).
    loaded: dict[str, Any] = json.loads(
        path.read_text(encoding="utf-8-sig"), parse_float=parse_float
    )
    return loaded


def _jsonschema_verdict(validator: Draft4Validator, payload: Any) -> bool | None:
    """jsonschema's answer; None when it raises (then the pre-check must say False)."""
    try:
        return bool(validator.is_valid(payload))
    except Exception:
        return None


# --- payload generation -----------------------------------------------------------------------

_TEXT = "abcXYZ019 -_.:/"
_WIDE = "éß€中😀"  # one code point each, several UTF-8 bytes
_TYPE_OF: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: type(v) is int,
    "number": lambda v: type(v) in (int, float),
    "boolean": lambda v: type(v) is bool,
}
_WRONG = [None, True, False, 0, 1, -1, 1.0, 2.5, "1", "", [], {}, Decimal("16.7"), "x", ["x"]]
_RARE = {"minimum", "maximum", "multipleOf", "minItems", "maxItems"}
_ANYTHING = ["x", 1, 1.5, None, True, {"a": [1, "b"]}, [1, 2], Decimal("16.7")]


class _Payloads:
    """Valid payloads built from a schema, and mutants of them."""

    def __init__(self, root: dict[str, Any], rng: random.Random) -> None:
        self.root = root
        self.rng = rng
        self.fullness = 0.5  # how likely each optional property is to be present

    def resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            node = self.root["definitions"][node["$ref"].rsplit("/", 1)[1]]
        return node

    def valid(self, node: Any, depth: int = 0) -> Any:
        rng = self.rng
        node = self.resolve(node)
        if "enum" in node:
            return rng.choice(node["enum"])
        kind = node.get("type")
        if kind == "object":
            required = set(node.get("required", []))
            chance = self.fullness if depth < 8 else 0.0
            return {
                name: self.valid(sub, depth + 1)
                for name, sub in node.get("properties", {}).items()
                if name in required or rng.random() < chance
            }
        if kind == "array":
            low = node.get("minItems", 0)
            high = min(node.get("maxItems", low + 3), low + 2)
            return [self.valid(node["items"], depth + 1) for _ in range(rng.randint(low, high))]
        if kind == "string":
            if node.get("format") == "date-time" and rng.random() < 0.8:
                return NOW
            top = node.get("maxLength", 40)
            size = (
                top if rng.random() < 0.2 else rng.randint(node.get("minLength", 0), min(top, 12))
            )
            alphabet = _TEXT + _WIDE if rng.random() < 0.3 else _TEXT
            chunk = "".join(rng.choice(alphabet) for _ in range(min(size, 8))) or "x"
            return (chunk * (size // len(chunk) + 1))[:size]
        if kind == "integer":
            low = int(node.get("minimum", -1000))
            return rng.randint(low, int(node.get("maximum", low + 5000)))
        if kind == "number":
            low = float(node.get("minimum", -500))
            high = float(node.get("maximum", low + 1000))
            roll = rng.random()
            if roll < 0.3:
                return rng.randint(int(low), int(high))
            if roll < 0.6:
                return rng.randint(int(low) * 2, int(high) * 2) / 2  # halves: multiples of 0.1
            return round(rng.uniform(low, high), rng.choice((1, 2, 3)))
        if kind == "boolean":
            return rng.random() < 0.5
        if kind is None:  # anything goes (DataTransfer data)
            return rng.choice(_ANYTHING)
        raise AssertionError(f"no generator for {node}")

    def mutants(self, node: Any, value: Any) -> list[Any]:
        """Replacements for ``value`` aimed at ``node``'s own keywords (mostly invalid)."""
        node = self.resolve(node)
        kind = node.get("type")
        if kind is None:
            return _ANYTHING
        if not _TYPE_OF[kind](value):  # already mutated
            value = self.valid(node)
        if kind == "integer":
            low, high = node.get("minimum"), node.get("maximum")
            return [
                True,
                1.0,
                float(value),
                str(value),
                2**70,
                -(2**70),
                Decimal(1),
                *([low, int(low), int(low) - 1] if low is not None else []),
                *([high, int(high), int(high) + 1] if high is not None else []),
            ]
        if kind == "number":
            low, high = node.get("minimum"), node.get("maximum")
            return [
                16.7,
                0.30000000000000004,
                0.1,
                16.75,
                1e308,
                -1e308,
                float("inf"),
                float("nan"),
                Decimal("16.7"),
                Decimal("16.75"),
                Decimal("0.30000000000000004"),
                False,
                str(value),
                *([low, float(low) - 0.1, float(low) - 1] if low is not None else []),
                *([high, float(high) + 0.1, float(high) + 1] if high is not None else []),
            ]
        if kind == "string":
            top = node.get("maxLength", 40)
            extra = [
                "x" * (top + 1),
                "x" * top,
                (_WIDE * top)[:top],
                (_WIDE * (top + 1))[: top + 1],
                "",
            ]
            for choice in node.get("enum", []):
                extra += [choice.lower(), choice.upper(), choice.swapcase(), choice + " "]
            return extra
        if kind == "object":
            extra = [[value], {}, {"extraKey": "x"}, {**value, "extraKey": "x"}]
            extra.append({**value, "customData": {"vendorId": "v", "more": 1}})
            extra.append({**value, "customData": {"vendorId": 5}})
            for name in node.get("required", []):
                extra.append({k: v for k, v in value.items() if k != name})
            for name, sub in node.get("properties", {}).items():
                if name not in value:  # an absent property, present with a mutant value
                    extra.append({**value, name: self.rng.choice(self.mutants(sub, None))})
            return extra
        if kind == "array":
            top = node.get("maxItems", 5)
            sample = value[0] if value else self.valid(node["items"])
            # Oversized only where that stays small (some maxItems are 1024).
            sized = [[sample] * (top + 1), [sample] * top] if top <= 24 else []
            return [[], *sized, [*value, sample], [*value, None], [*value, "x"], {"0": sample}]
        if kind == "boolean":
            return [0, 1, "true", 1.0, True, False]
        raise AssertionError(f"no mutants for {node}")

    def sites(self, node: Any, value: Any) -> Iterator[tuple[Any, Any, Any]]:
        """(container, key, schema node) for every value inside ``value``."""
        node = self.resolve(node)
        if isinstance(value, dict):
            props = node.get("properties", {})
            for key, child in value.items():
                if key in props:
                    yield value, key, props[key]
                    yield from self.sites(props[key], child)
        elif isinstance(value, list) and "items" in node:
            for index, child in enumerate(value):
                yield value, index, node["items"]
                yield from self.sites(node["items"], child)

    def pools(self, sites: list[tuple[Any, Any, Any]]) -> list[list[tuple[Any, Any, Any]]]:
        """The sites by what they test, so that rare keywords get their share of mutations."""
        rare, numeric, common = [], [], []
        for site in sites:
            node = self.resolve(site[2])
            if _RARE & node.keys():
                rare.append(site)
            if node.get("type") in ("integer", "number", "boolean"):
                numeric.append(site)
            if "enum" in node or "maxLength" in node:
                common.append(site)
        return [rare, rare, numeric, common, sites]

    def mutated(self, payload: dict[str, Any]) -> Any:
        rng = self.rng
        payload = copy.deepcopy(payload)
        sites = [(None, None, self.root), *self.sites(self.root, payload)]
        pools = [pool for pool in self.pools(sites) if pool]
        for _ in range(1 if rng.random() < 0.85 else 2):
            container, key, node = rng.choice(rng.choice(pools))
            current = payload if container is None else container[key]
            if rng.random() < 0.25:
                replacement = rng.choice(_WRONG)
            else:
                replacement = rng.choice(self.mutants(node, current))
            if container is None:
                return replacement
            container[key] = replacement
        return payload


def _cases(root: dict[str, Any], seed: str, valid: int, mutated: int) -> Iterator[Any]:
    gen = _Payloads(root, random.Random(seed))
    bases = []
    for index in range(valid):  # from sparse to complete payloads
        gen.fullness = (0.1, 0.5, 1.0, 0.3, 0.8)[index % 5]
        bases.append(gen.valid(root))
    yield from bases
    for index in range(mutated):
        yield gen.mutated(bases[index % len(bases)])
    yield from (None, [], "x", 1, 1.5, True, [bases[0]])


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("parse_float", [float, Decimal])
def test_every_shipped_schema_compiles(version: str, parse_float: Callable[[str], Any]) -> None:
    files = _schema_files(version)
    assert len(files) > 50
    unsupported = [p.name for p in files if compile_check(_load(p, parse_float)) is None]
    assert unsupported == []


def test_the_validators_schemas_uses_get_a_check() -> None:
    for message_type, action, version in [
        (REQUEST, "MeterValues", OcppVersion.V16),
        (REQUEST, "SetChargingProfile", OcppVersion.V16),
        (RESPONSE, "GetCompositeSchedule", OcppVersion.V16),
        (REQUEST, "TransactionEvent", OcppVersion.V201),
        (RESPONSE, "TransactionEvent", OcppVersion.V201),
    ]:
        validator, check = schemas._validator(message_type, action, version)
        assert validator.format_checker is None
        assert check is not None


@pytest.mark.parametrize("version", VERSIONS)
def test_check_agrees_with_jsonschema_on_generated_payloads(version: str) -> None:
    counts = {"valid": 0, "invalid": 0, "raises": 0}
    disagreements: list[str] = []
    never_valid: list[str] = []

    def compare(
        name: str, validator: Draft4Validator, check: Callable[[Any], bool], p: Any
    ) -> bool:
        expected = _jsonschema_verdict(validator, p)
        counts["raises" if expected is None else "valid" if expected else "invalid"] += 1
        got = check(p)
        assert type(got) is bool
        if got != bool(expected):
            disagreements.append(f"{name}: {p!r:.300} check={got} jsonschema={expected}")
        return bool(expected)

    for path in _schema_files(version):
        root = _load(path)
        validator, check = Draft4Validator(root), compile_check(root)
        assert check is not None
        verdicts = [
            compare(path.name, validator, check, payload)
            for payload in _cases(root, f"{version}/{path.name}", valid=5, mutated=14)
        ]
        if not any(verdicts):
            never_valid.append(path.name)
        if version == "v16" and path.name in DECIMAL_V16:
            # As schemas.py does: the schema and the payload both read with Decimal numbers.
            root = _load(path, Decimal)
            validator, check = Draft4Validator(root), compile_check(root)
            assert check is not None
            for payload in _cases(root, f"decimal/{path.name}", valid=25, mutated=100):
                as_decimal = json.loads(json.dumps(payload, default=str), parse_float=Decimal)
                compare(path.name, validator, check, as_decimal)
                compare(path.name, validator, check, payload)  # raw floats: jsonschema raises

    assert disagreements == []
    # Not vacuous: plenty of each verdict, and a valid payload for every schema.
    assert never_valid == []
    assert counts["valid"] >= 500, counts
    assert counts["invalid"] >= 1500, counts
    if version == "v16":
        assert counts["raises"] >= 50, counts


# --- hand-written cases, keyword by keyword ---------------------------------------------------

_INT = {"type": "integer"}
_NUM = {"type": "number"}


class _Dict(dict[str, Any]):
    pass


EDGE_CASES: list[tuple[dict[str, Any], Any, bool | None]] = [
    # type (draft 4: 1.0 is not an integer; bools are neither integers nor numbers)
    (_INT, 1, True),
    (_INT, -(2**70), True),
    (_INT, True, False),
    (_INT, 1.0, False),
    (_INT, "1", False),
    (_INT, Decimal(1), False),
    (_INT, None, False),
    (_NUM, 1, True),
    (_NUM, 1.5, True),
    (_NUM, Decimal("1.5"), True),
    (_NUM, Fraction(1, 2), True),
    (_NUM, float("nan"), True),
    (_NUM, False, False),
    (_NUM, "1.5", False),
    ({"type": "string"}, "", True),
    ({"type": "string"}, b"x", False),
    ({"type": "boolean"}, False, True),
    ({"type": "boolean"}, 0, False),
    ({"type": "null"}, None, True),
    ({"type": "null"}, 0, False),
    ({"type": "object"}, {}, True),
    ({"type": "object"}, [], False),
    ({"type": "array"}, [], True),
    ({"type": "array"}, (), False),
    ({"type": ["string", "null"]}, None, True),
    ({"type": ["string", "null"]}, "x", True),
    ({"type": ["string", "null"]}, 1, False),
    ({"type": ["integer", "string"], "maxLength": 2, "minimum": 3}, 2, False),
    ({"type": ["integer", "string"], "maxLength": 2, "minimum": 3}, "abc", False),
    ({"type": ["integer", "string"], "maxLength": 2, "minimum": 3}, 3, True),
    # properties, required, additionalProperties
    ({"properties": {"a": _INT}}, {"a": 1, "b": "x"}, True),
    ({"properties": {"a": _INT}}, {"a": "1"}, False),
    ({"properties": {"a": _INT}}, "not an object", True),
    ({"required": ["a"]}, {}, False),
    ({"required": ["a"]}, [], True),
    ({"type": "object", "required": ["a", "b"]}, {"a": None, "b": None}, True),
    ({"type": "object", "required": ["a", "b"]}, {"a": 1}, False),
    ({"type": "object", "additionalProperties": False}, {}, True),
    ({"type": "object", "additionalProperties": False}, {"a": 1}, False),
    ({"type": "object", "properties": {"a": {}}, "additionalProperties": False}, {"a": 1}, True),
    ({"type": "object", "properties": {"a": {}}, "additionalProperties": True}, {"b": 1}, True),
    ({"type": "object", "properties": {"a": False}}, {"a": 1}, False),
    ({"type": "object", "properties": {"a": True}}, {"a": 1}, True),
    ({"type": "string", "additionalProperties": False}, "x", True),
    # enum (strings compare as jsonschema does: no case folding, no type juggling)
    ({"type": "string", "enum": ["Accepted", "Rejected"]}, "Accepted", True),
    ({"type": "string", "enum": ["Accepted", "Rejected"]}, "accepted", False),
    ({"type": "string", "enum": ["Accepted", "Rejected"]}, "ACCEPTED", False),
    ({"type": "string", "enum": ["Accepted", "Rejected"]}, "Accepted ", False),
    ({"enum": ["1"]}, 1, False),
    ({"enum": ["1"]}, None, False),
    ({"enum": ["1"]}, "1", True),
    ({"enum": []}, "1", False),
    ({"type": "integer", "enum": ["1"]}, 1, False),
    ({"type": "string", "enum": ["ab", "abc"], "maxLength": 2}, "abc", False),
    ({"type": "string", "enum": ["ab", "abc"], "maxLength": 2}, "ab", True),
    # maxLength / minLength count code points and ignore non-strings
    ({"type": "string", "maxLength": 3}, "é€😀", True),
    ({"type": "string", "maxLength": 3}, "é€😀x", False),
    ({"type": "string", "maxLength": 0}, "", True),
    ({"maxLength": 3}, 123456, True),
    ({"maxLength": 3}, ["a", "b", "c", "d"], True),
    ({"type": "string", "minLength": 2}, "a", False),
    ({"type": "string", "minLength": 2, "maxLength": 3}, "ab", True),
    ({"minLength": 2}, 1, True),
    # minimum / maximum, with draft-4 boolean exclusives
    ({"type": "integer", "minimum": 0}, 0, True),
    ({"type": "integer", "minimum": 0}, -1, False),
    ({"type": "number", "minimum": 0.0}, -0.0, True),
    ({"type": "number", "minimum": 0, "exclusiveMinimum": True}, 0, False),
    ({"type": "number", "minimum": 0, "exclusiveMinimum": True}, 0.001, True),
    ({"type": "number", "minimum": 0, "exclusiveMinimum": False}, 0, True),
    ({"type": "number", "maximum": 100.0}, 100, True),
    ({"type": "number", "maximum": 100.0}, 100.1, False),
    ({"type": "number", "maximum": 100.0}, Decimal("100.01"), False),
    ({"type": "number", "maximum": 3, "exclusiveMaximum": True}, 3, False),
    ({"type": "number", "maximum": 3, "exclusiveMaximum": True}, 2.999, True),
    ({"type": "number", "exclusiveMaximum": True}, 10**9, True),  # no maximum: ignored
    ({"type": "number", "minimum": 0}, float("nan"), True),  # jsonschema: nan < 0 is False
    ({"minimum": 5}, "4", True),
    ({"minimum": 5}, True, True),  # a bool is not a number, so minimum does not apply
    # multipleOf: float divisors divide in floats, others use %
    ({"type": "number", "multipleOf": 0.1}, 16.7, False),  # 16.7 / 0.1 == 166.99999999999997
    ({"type": "number", "multipleOf": 0.1}, 0.30000000000000004, False),
    ({"type": "number", "multipleOf": 0.1}, 0.5, True),
    ({"type": "number", "multipleOf": 0.1}, 16, True),
    # 1e308 / 0.1 overflows: jsonschema then divides exact fractions (0.1 is not 1/10)
    ({"type": "number", "multipleOf": 0.1}, 1e308, False),
    ({"type": "number", "multipleOf": 0.1}, float(3602879701896397 * 2**970), True),
    ({"type": "number", "multipleOf": 0.1}, Decimal("16.7"), None),  # Decimal / float raises
    ({"type": "number", "multipleOf": 0.1}, float("nan"), None),  # int(nan) raises
    ({"type": "number", "multipleOf": Decimal("0.1")}, Decimal("16.7"), True),
    ({"type": "number", "multipleOf": Decimal("0.1")}, Decimal("16.75"), False),
    ({"type": "number", "multipleOf": Decimal("0.1")}, 16, True),
    ({"type": "number", "multipleOf": Decimal("0.1")}, 16.7, None),  # float % Decimal raises
    ({"type": "integer", "multipleOf": 5}, 15, True),
    ({"type": "integer", "multipleOf": 5}, 16, False),
    ({"multipleOf": 5}, "x", True),
    # items, minItems, maxItems; additionalItems ignored when items is one schema or absent
    ({"type": "array", "items": _INT}, [1, 2], True),
    ({"type": "array", "items": _INT}, [1, "2"], False),
    ({"type": "array", "items": _INT, "additionalItems": False}, [1, 2, 3], True),
    ({"type": "array", "additionalItems": False}, [1, 2, 3], True),
    ({"type": "array", "minItems": 1}, [], False),
    ({"type": "array", "minItems": 1, "maxItems": 2}, [1, 2], True),
    ({"type": "array", "minItems": 1, "maxItems": 2}, [1, 2, 3], False),
    ({"maxItems": 0}, "not an array", True),
    ({"items": _INT}, {"0": "x"}, True),
    # $ref to definitions; siblings of $ref are ignored in draft 4
    ({"definitions": {"A": _INT}, "$ref": "#/definitions/A", "type": "string"}, 1, True),
    (
        {"definitions": {"A": _INT}, "properties": {"a": {"$ref": "#/definitions/A"}}},
        {"a": 1.0},
        False,
    ),
    # annotations are ignored; format is not checked without a format checker
    (
        {"$schema": "x", "id": "urn:x", "title": "t", "description": "d", "comment": "c"},
        {"anything": 1},
        True,
    ),
    ({"type": "string", "format": "date-time", "javaType": "X", "default": "y"}, "nope", True),
    ({"type": "string", "format": "uri"}, "not a uri", True),
    # booleans as schemas
    ({"properties": {"a": True, "b": False}}, {"a": 1}, True),
    ({"properties": {"a": True, "b": False}}, {"b": 1}, False),
]


@pytest.mark.parametrize(("schema", "payload", "expected"), EDGE_CASES)
def test_keyword_edge_cases(schema: dict[str, Any], payload: Any, expected: bool | None) -> None:
    """``expected`` is jsonschema's verdict, None where jsonschema raises (check says False)."""
    check = compile_check(schema)
    assert check is not None
    assert _jsonschema_verdict(Draft4Validator(schema), payload) is expected
    assert check(payload) is bool(expected)


def test_a_definition_may_refer_to_itself() -> None:
    schema = {
        "definitions": {
            "Node": {
                "type": "object",
                "properties": {
                    "value": _INT,
                    "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}},
                },
                "required": ["value"],
                "additionalProperties": False,
            }
        },
        "$ref": "#/definitions/Node",
    }
    check = compile_check(schema)
    assert check is not None
    validator = Draft4Validator(schema)
    tree = {"value": 1, "children": [{"value": 2, "children": [{"value": 3}]}, {"value": 4}]}
    assert check(tree) is validator.is_valid(tree) is True
    broken = copy.deepcopy(tree)
    broken["children"][0]["children"][0]["value"] = "3"
    assert check(broken) is validator.is_valid(broken) is False
    loop = compile_check(
        {"definitions": {"A": {"$ref": "#/definitions/A"}}, "$ref": "#/definitions/A"}
    )
    assert loop is not None
    assert loop(1) is False  # jsonschema recurses forever; the check just says "not known valid"


def test_dict_subclasses_take_the_slow_path() -> None:
    schema = {"type": "object", "properties": {"a": _INT}, "required": ["a"]}
    check = compile_check(schema)
    assert check is not None
    assert check({"a": 1}) is True
    assert Draft4Validator(schema).is_valid(_Dict(a=1))
    assert check(_Dict(a=1)) is False
    assert check(OrderedDict(a=1)) is False


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "^a"},
        {"anyOf": [_INT]},
        {"oneOf": [_INT]},
        {"allOf": [_INT]},
        {"not": _INT},
        {"uniqueItems": True},
        {"patternProperties": {"^a": _INT}},
        {"dependencies": {"a": ["b"]}},
        {"minProperties": 1},
        {"maxProperties": 1},
        {"additionalProperties": _INT},
        {"additionalProperties": 0},
        {"items": [_INT]},
        {"items": True},
        {"enum": [1, 2]},
        {"enum": ["a", None]},
        {"enum": "a"},
        {"type": "any"},
        {"type": []},
        {"type": 1},
        {"required": "a"},
        {"required": True},
        {"maxLength": 1.5},
        {"minItems": -1},
        {"minimum": True},
        {"minimum": "0"},
        {"exclusiveMinimum": 0},  # the draft-6 number form
        {"$ref": "#"},
        {"$ref": "other.json#/definitions/A", "definitions": {"A": {}}},
        {"$ref": "#/definitions/Missing", "definitions": {}},
        {"$ref": "#/definitions/a~1b", "definitions": {"a/b": {}}},
        {"properties": {"a": {"id": "urn:elsewhere", "type": "string"}}},
        {"properties": {"a": []}},
        {"properties": []},
        {"someVendorKeyword": 1},
    ],
)
def test_unsupported_schemas_compile_to_none(schema: dict[str, Any]) -> None:
    assert compile_check(schema) is None


# --- validate() keeps its behaviour -------------------------------------------------------------


def _meter_values_16(**overrides: Any) -> dict[str, Any]:
    sampled = [
        {"value": "1234.5", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "7.2", "measurand": "Power.Active.Import", "unit": "kW"},
        {"value": "16.1", "measurand": "Current.Import", "unit": "A", "phase": "L1"},
        {"value": "230", "measurand": "Voltage", "unit": "V", "phase": "L1-N"},
    ]
    payload: dict[str, Any] = {
        "connectorId": 1,
        "transactionId": 42,
        "meterValue": [{"timestamp": NOW, "sampledValue": sampled}],
    }
    payload.update(overrides)
    return payload


def _transaction_event_201(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "eventType": "Updated",
        "timestamp": NOW,
        "triggerReason": "MeterValuePeriodic",
        "seqNo": 3,
        "transactionInfo": {"transactionId": "tx-1", "chargingState": "Charging"},
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [
            {
                "timestamp": NOW,
                "sampledValue": [
                    {"value": 1234.5, "measurand": "Energy.Active.Import.Register"},
                    {"value": 7200, "measurand": "Power.Active.Import"},
                    {"value": 16.1, "measurand": "Current.Import", "phase": "L1"},
                    {"value": 230.2, "measurand": "Voltage", "phase": "L1-N"},
                ],
            }
        ],
    }
    payload.update(overrides)
    return payload


def _charging_profile_16(limit: float) -> dict[str, Any]:
    """A 1.6 SetChargingProfile request with one period of ``limit`` A."""
    return {
        "connectorId": 1,
        "csChargingProfiles": {
            "chargingProfileId": 1,
            "stackLevel": 1,
            "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": {
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            },
        },
    }


@pytest.mark.parametrize(
    ("message_type", "action", "payload", "version"),
    [
        (REQUEST, "MeterValues", _meter_values_16(), OcppVersion.V16),
        (RESPONSE, "MeterValues", {}, OcppVersion.V16),
        (REQUEST, "TransactionEvent", _transaction_event_201(), OcppVersion.V201),
        (RESPONSE, "TransactionEvent", {}, OcppVersion.V201),
        (
            REQUEST,
            "SetChargingProfile",
            _charging_profile_16(16.7),
            OcppVersion.V16,
        ),
    ],
)
def test_valid_payloads_pass_without_asking_jsonschema(
    monkeypatch: pytest.MonkeyPatch,
    message_type: int,
    action: str,
    payload: dict[str, Any],
    version: OcppVersion,
) -> None:
    def unexpected(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the jsonschema path ran for a valid payload")

    monkeypatch.setattr(schemas, "best_match", unexpected)
    assert validate(message_type, action, payload, version) is None


@pytest.mark.parametrize(
    ("message_type", "action", "payload", "version", "code", "where"),
    [
        (
            REQUEST,
            "MeterValues",
            _meter_values_16(connectorId="1"),
            OcppVersion.V16,
            RpcError.TYPE_CONSTRAINT_VIOLATION,
            "connectorId:",
        ),
        (
            REQUEST,
            "MeterValues",
            _meter_values_16(connectorId=1.0),
            OcppVersion.V16,
            RpcError.TYPE_CONSTRAINT_VIOLATION,
            "connectorId:",
        ),
        (
            REQUEST,
            "MeterValues",
            {"meterValue": _meter_values_16()["meterValue"]},
            OcppVersion.V16,
            RpcError.OCCURRENCE_CONSTRAINT_VIOLATION,
            "payload:",
        ),
        (
            REQUEST,
            "MeterValues",
            _meter_values_16(meterValue=[]),
            OcppVersion.V16,
            RpcError.OCCURRENCE_CONSTRAINT_VIOLATION,
            "meterValue:",
        ),
        (
            REQUEST,
            "TransactionEvent",
            _transaction_event_201(extra=1),
            OcppVersion.V201,
            RpcError.FORMAT_VIOLATION,
            "payload:",
        ),
        (
            REQUEST,
            "TransactionEvent",
            _transaction_event_201(triggerReason="meterValuePeriodic"),
            OcppVersion.V201,
            RpcError.PROPERTY_CONSTRAINT_VIOLATION,
            "triggerReason:",
        ),
        (
            REQUEST,
            "Authorize",
            {"idTag": "x" * 21},
            OcppVersion.V16,
            RpcError.PROPERTY_CONSTRAINT_VIOLATION,
            "idTag:",
        ),
        (
            REQUEST,
            "SetChargingProfile",
            _charging_profile_16(16.75),
            OcppVersion.V16,
            RpcError.PROPERTY_CONSTRAINT_VIOLATION,
            "csChargingProfiles/chargingSchedule/chargingSchedulePeriod/0/limit:",
        ),
    ],
)
def test_invalid_payloads_keep_their_error_codes(
    message_type: int,
    action: str,
    payload: dict[str, Any],
    version: OcppVersion,
    code: RpcError,
    where: str,
) -> None:
    with pytest.raises(SchemaViolation) as exc:
        validate(message_type, action, payload, version)
    assert exc.value.error is code
    assert exc.value.description.startswith(where)
