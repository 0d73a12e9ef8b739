"""The operator's sites as OCPI Locations, each EVSE bound to an OCPP charger (pure: no I/O).

The input is the site file's ``[[locations]]`` tables (or the same shape as JSON from the admin
API). Keys are the OCPI Location/EVSE/Connector field names, minus what the bridge sets itself
(``country_code``, ``party_id``, ``last_updated``, the live EVSE ``status``), plus the binding
keys ``charger``, ``ocpp_evse_id``, ``ocpp_connector_id`` and the per-EVSE ``connector``
template::

    [[locations]]
    id = "LOC-AMS-1"
    address = "Stationsplein 1"
    city = "Amsterdam"
    country = "NLD"
    coordinates = { latitude = "52.37890", longitude = "4.90030" }   # strings, 5-7 decimals
    time_zone = "Europe/Amsterdam"

      [[locations.evses]]
      charger = "EXAMPLE-CP-1"
      ocpp_evse_id = 1
      connector = { standard = "IEC_62196_T2", format = "SOCKET", power_type = "AC_3_PHASE",
                    max_voltage = 230, max_amperage = 16 }

Validation reuses the strict models of ``bridge.ocpi.locations``; every problem of the input is
collected (``InventoryError.problems``), each naming the source, the object and the field as the
operator wrote them, e.g. ``site.toml: locations[0] (id 'LOC-AMS-1'): evses[1] (uid 'X'):
connectors[0].max_voltage: Input should be greater than 0``. Unknown keys are refused at every
level. Input with any problem yields no result.

Defaults and decisions:

- Location: ``publish`` true; ``operator`` is the CPO's business details passed by the caller
  (an explicit ``operator`` table replaces it); ``evses`` is always a list (possibly empty);
  ``country_code``/``party_id`` come from the bridge settings; every ``last_updated`` (Location,
  EVSE, Connector) is ``now``.
- EVSE ``status``: only ``PLANNED`` or ``REMOVED`` may be declared (the operator controls
  those); otherwise ``UNKNOWN``, which the caller replaces by the live status. ``charger`` is
  required unless the status is declared. An EVSE without a charger has no binding; an
  ``ocpp_evse_id``/``ocpp_connector_id`` on it is type-checked and otherwise unused.
- ``ocpp_evse_id`` (for OCPP 1.6 the connectorId): defaults to the charger's only reported EVSE.
  ``uid`` defaults to ``f"{charger}-{ocpp_evse_id}"``.
- ``capabilities``: when not given, ``REMOTE_START_STOP_CAPABLE``, plus ``UNLOCK_CAPABLE`` when
  any connector of the EVSE is a ``SOCKET`` (a cable cannot be unlocked remotely).
- Connectors: when ``connectors`` is not given, those the charger reported for the EVSE (OCPI id
  = ``str`` of the OCPP connector id); for a charger known to speak OCPP 1.6 that has not
  reported ``NumberOfConnectors`` yet, the one connector 1 of the 1.6 model. A connector entry's
  ``id`` defaults to ``str(ocpp_connector_id)`` and ``ocpp_connector_id`` to ``int(id)`` when
  ``id`` is a number.
- Each connector field is taken from the connector entry, else the EVSE's ``connector``
  template, else the charger's report, else it is an error if the field is required:

  * OCPP 2.0.1 ConnectorEnumType -> ``standard`` per reference 4.1, choosing ``sType3`` ->
    ``IEC_62196_T3C`` and ``sCEE-7-7`` -> ``DOMESTIC_F``; ``cGBT`` (AC or DC), ``Pan``,
    ``OppCharge``, ``s309-1P-32A``, ``Other*``, ``w*``, ``Undetermined`` and ``Unknown`` give
    none. ``format``: prefix ``c`` CABLE, ``s`` SOCKET.
  * ``power_type``: ``DC`` for the DC-only plugs ``cCCS1``, ``cCCS2``, ``cG105`` (CHAdeMO) and
    ``cChaoJi``; else SupplyPhases 1 -> ``AC_1_PHASE``, 3 -> ``AC_3_PHASE``.
  * ``max_electric_power``: the EVSE's reported maximum power in W (ignored unless positive).
  * ``max_voltage``/``max_amperage`` are never reported by OCPP: always from the file.

- Uniqueness within the whole input: location ids and EVSE uids (case-insensitive, CiString),
  and the (charger, ocpp_evse_id) pairs bound, REMOVED EVSEs included (an EVSE replaced by a new
  one on the same charger slot is kept as REMOVED without ``charger``); connector ids and OCPP
  connector ids within an EVSE. ``parse_location`` checks one location only: checking it
  against the locations already stored is the caller's job.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from bridge.ocpi.locations import (
    EVSE,
    Capability,
    Connector,
    ConnectorFormat,
    ConnectorType,
    Location,
    PowerType,
    Status,
)
from bridge.ocpi.models import BusinessDetails
from csms.domain.model import ChargerFacts, ConnectorInventory, EvseInventory, OcppVersion


class InventoryError(ValueError):
    """The operator's locations have problems: all of them, one message each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, kw_only=True)
class EvseBinding:
    """Where an OCPI EVSE lives on an OCPP charger."""

    evse_uid: str
    charger_id: str
    ocpp_evse_id: int
    """OCPP 2.0.1 EVSE id; for OCPP 1.6 the connectorId."""
    connectors: tuple[tuple[str, int], ...]
    """(OCPI connector id, OCPP connector id), in the EVSE's connector order."""


@dataclass(frozen=True, kw_only=True)
class SiteLocation:
    location: Location
    bindings: tuple[EvseBinding, ...]
    """One per EVSE bound to a charger (EVSEs declared PLANNED/REMOVED may have none)."""


def parse_locations(
    entries: Sequence[Mapping[str, Any]],
    source: str,
    *,
    country_code: str,
    party_id: str,
    chargers: Mapping[str, ChargerFacts],
    operator: BusinessDetails | None,
    now: datetime,
) -> tuple[SiteLocation, ...]:
    """Every ``[[locations]]`` entry of ``source`` as a Location with its bindings; raises
    ``InventoryError`` listing every problem found."""
    parser = _Parser(
        source=source,
        country_code=country_code,
        party_id=party_id,
        chargers=chargers,
        operator=operator,
        now=_aware(now),
    )
    results: list[SiteLocation] = []
    if isinstance(entries, str | bytes | Mapping) or not isinstance(entries, Sequence):
        parser.problems.append(
            f"{source}: locations: expected a list of tables ([[locations]]), "
            f"got {_describe(entries)}"
        )
    else:
        for index, entry in enumerate(entries):
            result = parser.location(entry, f"locations[{index}]")
            if result is not None:
                results.append(result)
    if parser.problems:
        raise InventoryError(parser.problems)
    return tuple(results)


def parse_location(
    entry: Mapping[str, Any],
    source: str,
    *,
    country_code: str,
    party_id: str,
    chargers: Mapping[str, ChargerFacts],
    operator: BusinessDetails | None,
    now: datetime,
) -> SiteLocation:
    """One location (admin API); messages name it ``location``. Uniqueness against other
    locations is not checked here."""
    parser = _Parser(
        source=source,
        country_code=country_code,
        party_id=party_id,
        chargers=chargers,
        operator=operator,
        now=_aware(now),
    )
    result = parser.location(entry, "location")
    if parser.problems or result is None:
        raise InventoryError(parser.problems)
    return result


# --- OCPP inventory -> OCPI connector fields ------------------------------------------------

_STANDARDS: dict[str, ConnectorType] = {
    "cCCS1": ConnectorType.IEC_62196_T1_COMBO,
    "cCCS2": ConnectorType.IEC_62196_T2_COMBO,
    "cG105": ConnectorType.CHADEMO,
    "cTesla": ConnectorType.TESLA_S,
    "cType1": ConnectorType.IEC_62196_T1,
    "cType2": ConnectorType.IEC_62196_T2,
    "sType2": ConnectorType.IEC_62196_T2,
    "sType3": ConnectorType.IEC_62196_T3C,
    "s309-1P-16A": ConnectorType.IEC_60309_2_single_16,
    "s309-3P-16A": ConnectorType.IEC_60309_2_three_16,
    "s309-3P-32A": ConnectorType.IEC_60309_2_three_32,
    "sCEE-7-7": ConnectorType.DOMESTIC_F,
    "sBS1361": ConnectorType.DOMESTIC_G,
    "cChaoJi": ConnectorType.CHAOJI,
}
_DC_ONLY = frozenset({"cCCS1", "cCCS2", "cG105", "cChaoJi"})
_PHASES = {1: PowerType.AC_1_PHASE, 3: PowerType.AC_3_PHASE}


def _reported_value(
    name: str, facts: ChargerFacts, evse: EvseInventory | None, connector: ConnectorInventory | None
) -> tuple[Any, str]:
    """A connector field from the charger's report, or None and why not."""
    charger = f"charger {facts.charger_id!r}"
    ctype = connector.connector_type if connector is not None else None
    if name in ("standard", "format", "power_type") and ctype is not None:
        if name == "standard" and ctype in _STANDARDS:
            return _STANDARDS[ctype], ""
        if name == "format" and ctype[:1] in ("c", "s"):
            return (ConnectorFormat.CABLE if ctype[0] == "c" else ConnectorFormat.SOCKET), ""
        if name == "power_type" and ctype in _DC_ONLY:
            return PowerType.DC, ""
        if name != "power_type":
            return None, f"{charger} reported connector type {ctype!r}, which has no OCPI {name}"
    if name == "power_type" and evse is not None and evse.supply_phases is not None:
        if evse.supply_phases in _PHASES:
            return _PHASES[evse.supply_phases], ""
        return None, (
            f"{charger} reported SupplyPhases {evse.supply_phases}, which does not give the "
            "OCPI power type"
        )
    if name == "max_electric_power" and evse is not None and (evse.max_power_w or 0) > 0:
        return evse.max_power_w, ""
    if name in ("max_voltage", "max_amperage"):
        return None, "OCPP chargers do not report it"
    return None, f"{charger} did not report it"


# --- Type navigation over the OCPI models ---------------------------------------------------


def _leaves(annotation: Any) -> list[Any]:
    """The alternatives of a field type: without ``Annotated`` metadata and ``None``."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return _leaves(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [leaf for arg in get_args(annotation) for leaf in _leaves(arg)]
    if annotation is type(None):
        return []
    return [annotation]


def _model_of(annotation: Any) -> type[BaseModel] | None:
    for leaf in _leaves(annotation):
        if get_origin(leaf) is None and isinstance(leaf, type) and issubclass(leaf, BaseModel):
            return leaf
    return None


def _item_of(annotation: Any) -> Any | None:
    for leaf in _leaves(annotation):
        if get_origin(leaf) is list:
            return get_args(leaf)[0]
    return None


def _type_at(annotation: Any, loc: Sequence[int | str]) -> Any | None:
    current: Any = annotation
    for part in loc:
        if isinstance(part, int):
            current = _item_of(current)
        else:
            model = _model_of(current)
            info = model.model_fields.get(part) if model is not None else None
            current = info.annotation if info is not None else None
        if current is None:
            return None
    return current


def _enum_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[Enum] | None:
    for leaf in _leaves(_type_at(model, loc)):
        if get_origin(leaf) is None and isinstance(leaf, type) and issubclass(leaf, Enum):
            return leaf
    return None


def _unknown_keys(
    value: object, annotation: Any, path: str
) -> Iterator[tuple[str, str, list[str]]]:
    """(path of the table, unknown key, allowed keys) inside a value of an OCPI type."""
    if isinstance(value, Mapping):
        model = _model_of(annotation)
        if model is None:
            return
        for key, item in value.items():
            if key in model.model_fields:
                yield from _unknown_keys(item, model.model_fields[key].annotation, f"{path}.{key}")
            else:
                yield path, str(key), list(model.model_fields)
    elif isinstance(value, list):
        item_type = _item_of(annotation)
        if item_type is not None:
            for index, item in enumerate(value):
                yield from _unknown_keys(item, item_type, f"{path}[{index}]")


# --- Messages -------------------------------------------------------------------------------

_TYPE_NAMES = {bool: "boolean", int: "integer", float: "float", str: "string"}


def _describe(value: object) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{_TYPE_NAMES.get(type(value), type(value).__name__)} {text}"


def _path(loc: Sequence[int | str]) -> str:
    """``('images', 0, 'url')`` -> ``images[0].url``."""
    return _suffix(loc).removeprefix(".")


def _suffix(loc: Sequence[int | str]) -> str:
    """``(0, 'url')`` -> ``[0].url``: the rest of a path."""
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)


_COORDINATE_HINT = 'is not decimal degrees with 5 to 7 decimals (write it like "52.37890")'
_PATTERN_HINTS = {
    "latitude": _COORDINATE_HINT,
    "longitude": _COORDINATE_HINT,
    "evse_id": 'is not an eMI3 EVSE ID (like "NL*CPO*E0001")',
    "country": 'is not an ISO 3166-1 alpha-3 country code in capitals (like "NLD")',
    "language": 'is not an ISO 639-1 language code (two lowercase letters, like "en")',
    "period_begin": "is not a time HH:MM from 00:00 to 23:59",
    "period_end": "is not a time HH:MM from 00:00 to 23:59",
    "country_code": "is not an ISO 3166-1 alpha-2 country code",
    "party_id": "is not a party id (3 letters or digits)",
}
_MAX_LISTED_ENUM_VALUES = 7


def _message(error: ErrorDetails, model: type[BaseModel]) -> str:
    """Pydantic's error in the operator's terms."""
    kind = error["type"]
    loc = error["loc"]
    value = error.get("input")
    names = [part for part in loc if isinstance(part, str)]
    name = names[-1] if names else ""
    text = error["msg"]
    if kind == "missing":
        return "required"
    if kind == "enum":
        enum = _enum_at(model, loc)
        if enum is None:
            return f"{value!r}: {text}"
        allowed = [str(member.value) for member in enum]
        if len(allowed) <= _MAX_LISTED_ENUM_VALUES:
            return f"{value!r} is not one of {', '.join(allowed)}"
        return f"{value!r} is not an OCPI {enum.__name__} value"
    if (
        name in ("latitude", "longitude")
        and kind == "string_type"
        and isinstance(value, int | float)
        and not isinstance(value, bool)
    ):
        return f'write coordinates as strings like "52.37890", not as numbers (got {value!r})'
    if kind == "string_pattern_mismatch":
        pattern = str(error.get("ctx", {}).get("pattern", ""))
        if name in _PATTERN_HINTS:
            return f"{value!r} {_PATTERN_HINTS[name]}"
        if "https?://" in pattern:
            return f"{value!r} is not an http:// or https:// URL without spaces"
        if "\\x20-\\x7e" in pattern:
            return f"{value!r} is not printable ASCII"
        return f"{value!r}: {text}"
    if kind == "string_too_long" and isinstance(value, str):
        return f"{text} (got {len(value)})"
    if kind == "string_too_short" and value == "":
        return "must not be empty"
    if kind == "value_error":
        return text.removeprefix("Value error, ")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a table (JSON object), got {_describe(value)}"
    if kind == "list_type":
        return f"expected a list, got {_describe(value)}"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return f"{text} (got {_describe(value)})"
    return text


def _unknown_key(path: str, key: str, allowed: Sequence[str]) -> tuple[str, str]:
    where = f"{path}.{key}" if path else key
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        return where, f"unknown key (did you mean {close[0]!r}?)"
    if len(allowed) <= 12:
        return where, f"unknown key (expected one of {', '.join(allowed)})"
    return where, "unknown key"


def _is_positive_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _aware(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
    return now


# --- The parser -----------------------------------------------------------------------------

_SET_BY_BRIDGE = {"last_updated": "set by the bridge"}
_SET_BY_BRIDGE_IN_LOCATION = {
    "country_code": "set by the bridge from its OCPI settings",
    "party_id": "set by the bridge from its OCPI settings",
    **_SET_BY_BRIDGE,
}
_LOCATION_KEYS = [key for key in Location.model_fields if key not in _SET_BY_BRIDGE_IN_LOCATION]
_EVSE_OCPI_KEYS = [key for key in EVSE.model_fields if key not in ("last_updated", "connectors")]
_EVSE_KEYS = [*_EVSE_OCPI_KEYS, "charger", "ocpp_evse_id", "connector", "connectors"]
_CONNECTOR_FIELDS = [key for key in Connector.model_fields if key not in ("id", "last_updated")]
_CONNECTOR_KEYS = ["id", "ocpp_connector_id", *_CONNECTOR_FIELDS]
_DECLARED_STATUSES = (Status.PLANNED, Status.REMOVED)
_OPERATOR_SHAPED = ("evses", "connectors")
"""OCPI fields whose operator form differs from OCPI: their tables are checked when parsed."""

Issue = tuple[str, str]
"""(path as the operator wrote it, message)."""


@dataclass
class _ConnectorSlot:
    label: str  # "connectors[0]" or "connector '1' (reported by charger 'X')"
    listed: bool  # by the operator in [[locations.evses.connectors]]
    explicit: Mapping[str, Any]
    ocpi_id: object  # str when valid; anything else is reported by the Connector model
    ocpp_id: int | None
    reported: ConnectorInventory | None
    broken: bool = False
    """Its ids have a problem: fields it would take from the charger are not reported missing."""


@dataclass
class _Parser:
    source: str
    country_code: str
    party_id: str
    chargers: Mapping[str, ChargerFacts]
    operator: BusinessDetails | None
    now: datetime
    problems: list[str] = field(default_factory=list)
    location_ids: dict[str, str] = field(default_factory=dict)
    evse_uids: dict[str, str] = field(default_factory=dict)
    bindings: dict[tuple[str, int], str] = field(default_factory=dict)

    def _report(self, where: str, issues: Sequence[Issue]) -> None:
        for path, message in issues:
            text = f"{where}: {path}: {message}" if path else f"{where}: {message}"
            if text not in self.problems:
                self.problems.append(text)

    # --- Location ---

    def location(self, entry: object, label: str) -> SiteLocation | None:
        if not isinstance(entry, Mapping):
            self._report(
                f"{self.source}: {label}", [("", f"expected a table, got {_describe(entry)}")]
            )
            return None
        location_id = entry.get("id")
        if isinstance(location_id, str):
            label = f"{label} (id {location_id!r})"
        where = f"{self.source}: {label}"
        issues: list[Issue] = []
        if isinstance(location_id, str):
            other = self.location_ids.setdefault(location_id.upper(), label)
            if other != label:
                issues.append(("id", f"duplicate location id {location_id!r} (also {other})"))
        issues += self._check_keys(entry, "", _LOCATION_KEYS, Location, _SET_BY_BRIDGE_IN_LOCATION)

        evses: list[EVSE] = []
        bindings: list[EvseBinding] = []
        evse_problems = 0
        raw_evses = entry.get("evses", [])
        if not isinstance(raw_evses, list):
            issues.append(("evses", f"expected a list of tables, got {_describe(raw_evses)}"))
        else:
            for index, raw in enumerate(raw_evses):
                evse, binding, evse_issues = self._evse(raw, label, f"evses[{index}]")
                issues += evse_issues
                evse_problems += len(evse_issues)
                if evse is not None:
                    evses.append(evse)
                if binding is not None:
                    bindings.append(binding)

        data: dict[str, Any] = {
            key: value for key, value in entry.items() if key in _LOCATION_KEYS and key != "evses"
        }
        data.setdefault("publish", True)
        if "operator" not in data and self.operator is not None:
            data["operator"] = self.operator
        data.update(
            country_code=self.country_code,
            party_id=self.party_id,
            evses=evses,
            last_updated=self.now,
        )
        location: Location | None = None
        try:
            location = Location.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                head = error["loc"][0] if error["loc"] else ""
                if head == "evses" and evse_problems:
                    continue  # the EVSEs' own problems say it better
                path = _path(error["loc"])
                if head in ("country_code", "party_id"):
                    path = f"{head} (bridge setting)"
                issues.append((path, _message(error, Location)))
        self._report(where, issues)
        if issues or evse_problems or location is None:
            return None
        return SiteLocation(location=location, bindings=tuple(bindings))

    def _check_keys(
        self,
        entry: Mapping[str, Any],
        prefix: str,
        allowed: Sequence[str],
        model: type[BaseModel],
        reserved: Mapping[str, str] = _SET_BY_BRIDGE,
    ) -> list[Issue]:
        """Unknown keys of an operator table and, for its OCPI-typed values, of their tables."""
        issues: list[Issue] = []
        for key, value in entry.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if key in reserved:
                issues.append((path, f"not allowed: {reserved[key]}"))
            elif key not in allowed:
                issues.append(_unknown_key(prefix, str(key), allowed))
            elif key in model.model_fields and key not in _OPERATOR_SHAPED:
                for table, unknown, known in _unknown_keys(
                    value, model.model_fields[key].annotation, path
                ):
                    issues.append(_unknown_key(table, unknown, known))
        return issues

    # --- EVSE ---

    def _evse(
        self, entry: object, location_label: str, label: str
    ) -> tuple[EVSE | None, EvseBinding | None, list[Issue]]:
        """The EVSE, its binding and its problems; problems are paths under ``label``."""
        issues: list[Issue] = []
        if not isinstance(entry, Mapping):
            return None, None, [(label, f"expected a table, got {_describe(entry)}")]
        issues += self._check_keys(entry, "", _EVSE_KEYS, EVSE)

        # Status declared by the operator.
        declared: Status | None = None
        raw_status = entry.get("status")
        if raw_status in _DECLARED_STATUSES:
            declared = Status(raw_status)
        elif raw_status is not None:
            issues.append(
                (
                    "status",
                    f"{raw_status!r}: only PLANNED or REMOVED can be declared (the bridge "
                    "publishes the live status of the others)",
                )
            )

        # Charger and EVSE on it.
        facts: ChargerFacts | None = None
        charger_id = entry.get("charger")
        if charger_id is None:
            if raw_status is None:
                issues.append(("charger", "required (unless status is PLANNED or REMOVED)"))
        elif not isinstance(charger_id, str) or not charger_id:
            issues.append(("charger", f"expected a charger id, got {_describe(charger_id)}"))
        elif charger_id not in self.chargers:
            issues.append(("charger", self._unknown_charger(charger_id)))
        else:
            facts = self.chargers[charger_id]

        ocpp_evse_id: int | None = None
        reported_evse: EvseInventory | None = None
        raw_evse_id = entry.get("ocpp_evse_id")
        if raw_evse_id is not None and not _is_positive_int(raw_evse_id):
            issues.append(
                ("ocpp_evse_id", f"expected a positive integer, got {_describe(raw_evse_id)}")
            )
        elif facts is not None:
            ocpp_evse_id, reported_evse, problem = _resolve_evse(facts, raw_evse_id)
            if problem:
                issues.append(("ocpp_evse_id", problem))

        # uid and label.
        raw_uid = entry.get("uid")
        uid: object = raw_uid
        default_uid = False
        if raw_uid is None and isinstance(charger_id, str) and ocpp_evse_id is not None:
            uid = f"{charger_id}-{ocpp_evse_id}"
            default_uid = True
        elif raw_uid is None and charger_id is None and declared is not None:
            issues.append(("uid", "required when the EVSE has no charger"))
        if isinstance(uid, str):
            label = f"{label} (uid {uid!r})"
            other = self.evse_uids.setdefault(uid.upper(), f"{location_label}: {label}")
            if other != f"{location_label}: {label}":
                issues.append(("uid", f"duplicate EVSE uid {uid!r} (also {other})"))
        if facts is not None and ocpp_evse_id is not None:
            key = (facts.charger_id, ocpp_evse_id)
            other = self.bindings.setdefault(key, f"{location_label}: {label}")
            if other != f"{location_label}: {label}":
                issues.append(
                    (
                        "ocpp_evse_id" if raw_evse_id is not None else "charger",
                        f"{_evse_name(facts, ocpp_evse_id)} of charger {facts.charger_id!r} is "
                        f"already bound to {other}",
                    )
                )

        connectors, pairs, connector_issues = self._connectors(
            entry, facts, ocpp_evse_id, reported_evse
        )
        issues += connector_issues

        data: dict[str, Any] = {
            key: value
            for key, value in entry.items()
            if key in _EVSE_OCPI_KEYS and key not in ("uid", "status")
        }
        if uid is not None:
            data["uid"] = uid
        data["status"] = declared or Status.UNKNOWN
        if data.get("capabilities") is None and connectors:
            capabilities = [Capability.REMOTE_START_STOP_CAPABLE]
            if any(c.format is ConnectorFormat.SOCKET for c in connectors):
                capabilities.append(Capability.UNLOCK_CAPABLE)
            data["capabilities"] = capabilities
        data["connectors"] = connectors
        data["last_updated"] = self.now
        evse: EVSE | None = None
        earlier_issues = bool(issues)
        try:
            evse = EVSE.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                head = error["loc"][0] if error["loc"] else ""
                if head == "connectors" and earlier_issues:
                    continue  # no or too few connectors because of a problem reported above
                if head == "uid" and uid is None:
                    continue  # reported above (charger or uid)
                message = _message(error, EVSE)
                if head == "uid" and default_uid:
                    message = f"the default uid (charger-ocpp_evse_id): {message}; set uid"
                issues.append((_path(error["loc"]), message))
        issues = [(f"{label}: {path}" if path else label, message) for path, message in issues]
        if evse is None or issues:
            return None, None, issues
        binding = None
        if facts is not None and ocpp_evse_id is not None:
            binding = EvseBinding(
                evse_uid=evse.uid,
                charger_id=facts.charger_id,
                ocpp_evse_id=ocpp_evse_id,
                connectors=tuple(pairs),
            )
        return evse, binding, issues

    def _unknown_charger(self, charger_id: str) -> str:
        message = f"unknown charger {charger_id!r}"
        same = [known for known in self.chargers if known.lower() == charger_id.lower()]
        close = same or difflib.get_close_matches(charger_id, list(self.chargers), n=1)
        if close:
            return f"{message} (did you mean {close[0]!r}?)"
        return f"{message} (not a registered charger nor one of the file's [[chargers]])"

    # --- Connectors ---

    def _connectors(
        self,
        entry: Mapping[str, Any],
        facts: ChargerFacts | None,
        ocpp_evse_id: int | None,
        reported_evse: EvseInventory | None,
    ) -> tuple[list[Connector], list[tuple[str, int]], list[Issue]]:
        issues: list[Issue] = []
        template: dict[str, Any] = {}
        raw_template = entry.get("connector")
        if raw_template is not None:
            if not isinstance(raw_template, Mapping):
                issues.append(("connector", f"expected a table, got {_describe(raw_template)}"))
            else:
                for key in raw_template:
                    if key in ("id", "ocpp_connector_id"):
                        issues.append(
                            (
                                f"connector.{key}",
                                "not allowed in the template: list the connectors in "
                                "[[locations.evses.connectors]]",
                            )
                        )
                issues += self._check_keys(
                    {k: v for k, v in raw_template.items() if k not in ("id", "ocpp_connector_id")},
                    "connector",
                    _CONNECTOR_FIELDS,
                    Connector,
                )
                template = {
                    k: v
                    for k, v in raw_template.items()
                    if k in _CONNECTOR_FIELDS and v is not None
                }

        slots, slot_issues = self._connector_slots(entry, facts, ocpp_evse_id, reported_evse)
        issues += slot_issues

        connectors: list[Connector] = []
        pairs: list[tuple[str, int]] = []
        for slot in slots:
            connector, connector_issues = self._connector(slot, template, facts, reported_evse)
            issues += connector_issues
            if connector is not None:
                connectors.append(connector)
                if slot.ocpp_id is not None:
                    pairs.append((connector.id, slot.ocpp_id))
        return connectors, pairs, issues

    def _connector_slots(
        self,
        entry: Mapping[str, Any],
        facts: ChargerFacts | None,
        ocpp_evse_id: int | None,
        reported_evse: EvseInventory | None,
    ) -> tuple[list[_ConnectorSlot], list[Issue]]:
        """Which connectors the EVSE has: listed by the operator, else as reported. Only an
        EVSE on a known charger needs OCPP connector ids."""
        bound = facts is not None
        raw = entry.get("connectors")
        issues: list[Issue] = []
        slots: list[_ConnectorSlot] = []
        if raw is None:
            reported: tuple[ConnectorInventory, ...] = ()
            if reported_evse is not None and reported_evse.connectors:
                reported = reported_evse.connectors
            elif (
                facts is not None
                and ocpp_evse_id is not None
                and facts.ocpp_version is OcppVersion.V16
                and not facts.evses
            ):
                reported = (ConnectorInventory(connector_id=1),)
            for item in reported:
                label = f"connector '{item.connector_id}'"
                if facts is not None:
                    label += f" (reported by charger {facts.charger_id!r})"
                slots.append(
                    _ConnectorSlot(
                        label=label,
                        listed=False,
                        explicit={},
                        ocpi_id=str(item.connector_id),
                        ocpp_id=item.connector_id,
                        reported=item,
                    )
                )
            if not slots and facts is not None and ocpp_evse_id is not None:
                issues.append(
                    (
                        "connectors",
                        f"charger {facts.charger_id!r} reported no connectors for "
                        f"{_evse_name(facts, ocpp_evse_id)}: list them in "
                        "[[locations.evses.connectors]]",
                    )
                )
            elif (
                not slots
                and entry.get("charger") is None
                and entry.get("status") in _DECLARED_STATUSES
            ):
                issues.append(
                    (
                        "connectors",
                        "required when the EVSE has no charger: list them in "
                        "[[locations.evses.connectors]]",
                    )
                )
            return slots, issues
        if not isinstance(raw, list):
            return [], [("connectors", f"expected a list of tables, got {_describe(raw)}")]
        if not raw:
            return [], [("connectors", "at least one connector is required")]
        reported_ids = [c.connector_id for c in reported_evse.connectors] if reported_evse else []
        seen_ids: dict[str, str] = {}
        seen_ocpp: dict[int, str] = {}
        for index, item in enumerate(raw):
            label = f"connectors[{index}]"
            if not isinstance(item, Mapping):
                issues.append((label, f"expected a table, got {_describe(item)}"))
                continue
            issues += self._check_keys(item, label, _CONNECTOR_KEYS, Connector)
            issues_before = len(issues)
            raw_id = item.get("id")
            raw_ocpp = item.get("ocpp_connector_id")
            ocpp_id: int | None = None
            if raw_ocpp is not None:
                if _is_positive_int(raw_ocpp):
                    ocpp_id = raw_ocpp
                else:
                    issues.append(
                        (
                            f"{label}.ocpp_connector_id",
                            f"expected a positive integer, got {_describe(raw_ocpp)}",
                        )
                    )
            elif isinstance(raw_id, str) and raw_id.isascii() and raw_id.isdigit():
                ocpp_id = int(raw_id) or None
            ocpi_id = raw_id if raw_id is not None else (str(ocpp_id) if ocpp_id else None)
            if raw_id is None and raw_ocpp is None:
                issues.append((f"{label}.id", "required (or ocpp_connector_id)"))
            elif bound and ocpp_id is None and raw_ocpp is None and isinstance(raw_id, str):
                issues.append(
                    (
                        f"{label}.ocpp_connector_id",
                        f"required: id {raw_id!r} is not an OCPP connector number",
                    )
                )
            if (
                facts is not None
                and ocpp_evse_id is not None
                and ocpp_id is not None
                and reported_ids
                and ocpp_id not in reported_ids
            ):
                field_name = "ocpp_connector_id" if raw_ocpp is not None else "id"
                issues.append(
                    (
                        f"{label}.{field_name}",
                        f"charger {facts.charger_id!r} reported no connector {ocpp_id} on "
                        f"{_evse_name(facts, ocpp_evse_id)} (it has "
                        f"{', '.join(map(str, reported_ids))})",
                    )
                )
            if isinstance(ocpi_id, str):
                other = seen_ids.setdefault(ocpi_id.upper(), label)
                if other != label:
                    issues.append(
                        (f"{label}.id", f"duplicate connector id {ocpi_id!r} (also {other})")
                    )
            if bound and ocpp_id is not None:
                other = seen_ocpp.setdefault(ocpp_id, label)
                if other != label:
                    issues.append(
                        (
                            f"{label}.ocpp_connector_id",
                            f"OCPP connector {ocpp_id} is already {other}",
                        )
                    )
            reported_connector = None
            if reported_evse is not None and ocpp_id is not None:
                reported_connector = next(
                    (c for c in reported_evse.connectors if c.connector_id == ocpp_id), None
                )
            slots.append(
                _ConnectorSlot(
                    label=label,
                    listed=True,
                    explicit=item,
                    ocpi_id=ocpi_id,
                    ocpp_id=ocpp_id if bound else None,
                    reported=reported_connector,
                    broken=len(issues) > issues_before,
                )
            )
        return slots, issues

    def _connector(
        self,
        slot: _ConnectorSlot,
        template: Mapping[str, Any],
        facts: ChargerFacts | None,
        reported_evse: EvseInventory | None,
    ) -> tuple[Connector | None, list[Issue]]:
        issues: list[Issue] = []
        sep = "." if slot.listed else ": "
        data: dict[str, Any] = {"last_updated": self.now}
        paths: dict[str, str] = {"id": f"{slot.label}{sep}id"}
        notes: dict[str, str] = {}
        missing: set[str] = set()
        if slot.ocpi_id is not None:
            data["id"] = slot.ocpi_id
        for name in _CONNECTOR_FIELDS:
            if slot.explicit.get(name) is not None:
                data[name] = slot.explicit[name]
                paths[name] = f"{slot.label}{sep}{name}"
            elif name in template:
                data[name] = template[name]
                paths[name] = f"connector.{name}"
            else:
                paths[name] = f"{slot.label}{sep}{name}"
                why = "the EVSE has no charger"
                if facts is not None:
                    value, why = _reported_value(name, facts, reported_evse, slot.reported)
                    if value is not None:
                        data[name] = value
                        if slot.listed:
                            notes[name] = f" (reported by charger {facts.charger_id!r})"
                        continue
                if Connector.model_fields[name].is_required():
                    missing.add(name)
                    if slot.broken and facts is not None:
                        continue  # would come from the report of a connector we cannot tell
                    issues.append(
                        (
                            paths[name],
                            f"required: {why}; set it in the EVSE's connector template or "
                            "on the connector in [[locations.evses.connectors]]",
                        )
                    )
        try:
            connector = Connector.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                loc = error["loc"]
                head = str(loc[0]) if loc else "id"
                if head in missing or (head == "id" and "id" not in data):
                    continue  # reported above or while reading the connector list
                path = paths.get(head, head) + _suffix(loc[1:]) + notes.get(head, "")
                issues.append((path, _message(error, Connector)))
            return None, issues
        return (None, issues) if issues else (connector, issues)


def _evse_name(facts: ChargerFacts, ocpp_evse_id: int) -> str:
    if facts.ocpp_version is OcppVersion.V16:
        return f"connectorId {ocpp_evse_id}"
    return f"EVSE {ocpp_evse_id}"


def _resolve_evse(
    facts: ChargerFacts, raw: int | None
) -> tuple[int | None, EvseInventory | None, str]:
    """The OCPP EVSE id (given or the only one reported), the reported EVSE and a problem."""
    reported = {evse.ocpp_evse_id: evse for evse in facts.evses}
    ids = ", ".join(str(i) for i in reported)
    charger = f"charger {facts.charger_id!r}"
    if raw is None:
        if len(reported) == 1:
            only = next(iter(reported.values()))
            return only.ocpp_evse_id, only, ""
        if not reported:
            return None, None, f"required: {charger} has not reported its EVSEs yet"
        return None, None, f"required: {charger} reported {len(reported)} EVSEs ({ids})"
    if reported and raw not in reported:
        return None, None, f"{charger} reported no {_evse_name(facts, raw)} (it has {ids})"
    return raw, reported.get(raw), ""
