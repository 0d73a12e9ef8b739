"""Site inventory: the operator's [[locations]] (TOML or JSON) into OCPI Locations and EVSE
bindings, with every problem named by file, object and field."""

from __future__ import annotations

import copy
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.inventory import (
    EvseBinding,
    InventoryError,
    SiteLocation,
    parse_location,
    parse_locations,
)
from bridge.ocpi.locations import Location
from bridge.ocpi.models import BusinessDetails
from bridge.site import SiteFileError, load_site, parse_site
from csms.domain.model import ChargerFacts, ConnectorInventory, EvseInventory, OcppVersion

EXAMPLES = Path(__file__).parents[1] / "data" / "ocpi-examples" / "locations"
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
NOW_TEXT = "2024-05-01T12:00:00.000Z"
CPO = BusinessDetails(name="Example CPO", website="https://cpo.example.com")
LOC = "site.toml: locations[0] (id 'LOC-1')"


# --- builders -------------------------------------------------------------------------------


def a_charger_201(charger_id: str = "CP-201", *evses: EvseInventory) -> ChargerFacts:
    if not evses:
        evses = (
            EvseInventory(
                ocpp_evse_id=1,
                connectors=(ConnectorInventory(connector_id=1, connector_type="sType2"),),
                max_power_w=11000,
                supply_phases=3,
            ),
        )
    return ChargerFacts(charger_id=charger_id, ocpp_version=OcppVersion.V201, evses=evses)


def a_charger_16(charger_id: str = "CP-16", connectors: int = 2) -> ChargerFacts:
    """As reported by NumberOfConnectors: EVSE N = connectorId N with one connector 1."""
    return ChargerFacts(
        charger_id=charger_id,
        ocpp_version=OcppVersion.V16,
        evses=tuple(
            EvseInventory(ocpp_evse_id=n, connectors=(ConnectorInventory(connector_id=1),))
            for n in range(1, connectors + 1)
        ),
    )


def a_two_evse_charger(charger_id: str = "CP-DUO") -> ChargerFacts:
    return a_charger_201(
        charger_id,
        EvseInventory(
            ocpp_evse_id=1,
            connectors=(ConnectorInventory(connector_id=1, connector_type="cType2"),),
            max_power_w=22000,
            supply_phases=3,
        ),
        EvseInventory(
            ocpp_evse_id=2,
            connectors=(
                ConnectorInventory(connector_id=1, connector_type="cCCS2"),
                ConnectorInventory(connector_id=2, connector_type="cG105"),
            ),
            max_power_w=50000,
        ),
    )


CHARGERS = {c.charger_id: c for c in (a_charger_201(), a_charger_16(), a_two_evse_charger())}

TEMPLATE = {
    "standard": "IEC_62196_T2",
    "format": "SOCKET",
    "power_type": "AC_3_PHASE",
    "max_voltage": 230,
    "max_amperage": 16,
}


def an_evse(**changes: Any) -> dict[str, Any]:
    evse: dict[str, Any] = {
        "charger": "CP-201",
        "connector": {"max_voltage": 230, "max_amperage": 16},
    }
    evse.update(changes)
    return {key: value for key, value in evse.items() if value is not None}


def a_location(**changes: Any) -> dict[str, Any]:
    """A valid JSON-shaped entry; a change to ``None`` removes the key."""
    entry: dict[str, Any] = {
        "id": "LOC-1",
        "address": "Stationsplein 1",
        "city": "Amsterdam",
        "country": "NLD",
        "coordinates": {"latitude": "52.37890", "longitude": "4.90030"},
        "time_zone": "Europe/Amsterdam",
        "evses": [an_evse()],
    }
    entry.update(changes)
    return {key: value for key, value in entry.items() if value is not None}


def parse(
    entries: list[dict[str, Any]],
    chargers: dict[str, ChargerFacts] | None = None,
    operator: BusinessDetails | None = CPO,
) -> tuple[SiteLocation, ...]:
    return parse_locations(
        entries,
        "site.toml",
        country_code="NL",
        party_id="CPO",
        chargers=CHARGERS if chargers is None else chargers,
        operator=operator,
        now=NOW,
    )


def parse_toml(text: str, **kwargs: Any) -> tuple[SiteLocation, ...]:
    return parse(tomllib.loads(text)["locations"], **kwargs)


def problems_of(entries: list[dict[str, Any]], **kwargs: Any) -> tuple[str, ...]:
    with pytest.raises(InventoryError) as exc:
        parse(entries, **kwargs)
    assert str(exc.value) == "\n".join(exc.value.problems)
    return exc.value.problems


def ocpi_json(site: SiteLocation) -> Any:
    return json.loads(site.location.model_dump_json(exclude_none=True))


# --- a complete location --------------------------------------------------------------------

COMPLETE_TOML = """
[[locations]]
id = "LOC-AMS-1"
name = "Example car park"
address = "Stationsplein 1"
city = "Amsterdam"
postal_code = "1012 AB"
state = "Noord-Holland"
country = "NLD"
coordinates = { latitude = "52.37890", longitude = "4.90030" }
time_zone = "Europe/Amsterdam"
publish = false
publish_allowed_to = [{ visual_number = "12345-67", issuer = "NewMotion" }]
parking_type = "PARKING_GARAGE"
directions = [{ language = "en", text = "Level -1, behind the barrier" }]
facilities = ["CAFE", "TRAIN_STATION"]
charging_when_closed = false
opening_times = { twentyfourseven = false, regular_hours = [
    { weekday = 1, period_begin = "08:00", period_end = "20:00" },
    { weekday = 2, period_begin = "08:00", period_end = "20:00" },
], exceptional_closings = [
    { period_begin = "2024-12-25T00:00:00Z", period_end = "2024-12-26T00:00:00Z" },
] }
operator = { name = "Garage Operator", website = "https://garage.example.com" }
suboperator = { name = "Sub Operator" }
images = [{ url = "https://cpo.example.com/site.jpg", category = "LOCATION", type = "jpeg" }]

  [[locations.related_locations]]
  latitude = "52.37900"
  longitude = "4.90000"
  name = { language = "en", text = "Entrance" }

  [locations.owner]
  name = "City"
  logo = { url = "https://city.example.com/logo.png", category = "OWNER", type = "png" }

  [locations.energy_mix]
  is_green_energy = true
  energy_sources = [{ source = "WIND", percentage = 100 }]
  supplier_name = "Green Co"

  [[locations.evses]]
  uid = "LOC-AMS-1-1"
  charger = "CP-DUO"
  ocpp_evse_id = 2
  evse_id = "NL*CPO*E0001"
  status = "PLANNED"
  status_schedule = [{ period_begin = "2024-06-01T00:00:00Z", status = "AVAILABLE" }]
  capabilities = ["RFID_READER", "REMOTE_START_STOP_CAPABLE"]
  floor_level = "-1"
  coordinates = { latitude = "52.37891", longitude = "4.90031" }
  physical_reference = "1"
  directions = [{ language = "nl", text = "Links" }]
  parking_restrictions = ["EV_ONLY"]
  images = [{ url = "https://cpo.example.com/evse.jpg", category = "CHARGER", type = "jpeg" }]
  connector = { power_type = "DC", max_voltage = 920, tariff_ids = ["DC-1"] }

    [[locations.evses.connectors]]
    id = "A"
    ocpp_connector_id = 2
    standard = "CHADEMO"
    format = "CABLE"
    max_amperage = 125
    max_electric_power = 50000
    terms_and_conditions = "https://cpo.example.com/terms"

    [[locations.evses.connectors]]
    ocpp_connector_id = 1
    standard = "IEC_62196_T2_COMBO"
    format = "CABLE"
    max_amperage = 200
    tariff_ids = ["DC-2", "DC-PARK"]
"""

COMPLETE_JSON = {
    "country_code": "NL",
    "party_id": "CPO",
    "id": "LOC-AMS-1",
    "publish": False,
    "publish_allowed_to": [{"visual_number": "12345-67", "issuer": "NewMotion"}],
    "name": "Example car park",
    "address": "Stationsplein 1",
    "city": "Amsterdam",
    "postal_code": "1012 AB",
    "state": "Noord-Holland",
    "country": "NLD",
    "coordinates": {"latitude": "52.37890", "longitude": "4.90030"},
    "related_locations": [
        {
            "latitude": "52.37900",
            "longitude": "4.90000",
            "name": {"language": "en", "text": "Entrance"},
        }
    ],
    "parking_type": "PARKING_GARAGE",
    "evses": [
        {
            "uid": "LOC-AMS-1-1",
            "evse_id": "NL*CPO*E0001",
            "status": "PLANNED",
            "status_schedule": [
                {"period_begin": "2024-06-01T00:00:00.000Z", "status": "AVAILABLE"}
            ],
            "capabilities": ["RFID_READER", "REMOTE_START_STOP_CAPABLE"],
            "connectors": [
                {
                    "id": "A",
                    "standard": "CHADEMO",
                    "format": "CABLE",
                    "power_type": "DC",
                    "max_voltage": 920,
                    "max_amperage": 125,
                    "max_electric_power": 50000,
                    "tariff_ids": ["DC-1"],
                    "terms_and_conditions": "https://cpo.example.com/terms",
                    "last_updated": NOW_TEXT,
                },
                {
                    "id": "1",
                    "standard": "IEC_62196_T2_COMBO",
                    "format": "CABLE",
                    "power_type": "DC",
                    "max_voltage": 920,
                    "max_amperage": 200,
                    "max_electric_power": 50000,  # reported by the charger for its EVSE 2
                    "tariff_ids": ["DC-2", "DC-PARK"],
                    "last_updated": NOW_TEXT,
                },
            ],
            "floor_level": "-1",
            "coordinates": {"latitude": "52.37891", "longitude": "4.90031"},
            "physical_reference": "1",
            "directions": [{"language": "nl", "text": "Links"}],
            "parking_restrictions": ["EV_ONLY"],
            "images": [
                {"url": "https://cpo.example.com/evse.jpg", "category": "CHARGER", "type": "jpeg"}
            ],
            "last_updated": NOW_TEXT,
        }
    ],
    "directions": [{"language": "en", "text": "Level -1, behind the barrier"}],
    "operator": {"name": "Garage Operator", "website": "https://garage.example.com"},
    "suboperator": {"name": "Sub Operator"},
    "owner": {
        "name": "City",
        "logo": {
            "url": "https://city.example.com/logo.png",
            "category": "OWNER",
            "type": "png",
        },
    },
    "facilities": ["CAFE", "TRAIN_STATION"],
    "time_zone": "Europe/Amsterdam",
    "opening_times": {
        "twentyfourseven": False,
        "regular_hours": [
            {"weekday": 1, "period_begin": "08:00", "period_end": "20:00"},
            {"weekday": 2, "period_begin": "08:00", "period_end": "20:00"},
        ],
        "exceptional_closings": [
            {"period_begin": "2024-12-25T00:00:00.000Z", "period_end": "2024-12-26T00:00:00.000Z"}
        ],
    },
    "charging_when_closed": False,
    "images": [{"url": "https://cpo.example.com/site.jpg", "category": "LOCATION", "type": "jpeg"}],
    "energy_mix": {
        "is_green_energy": True,
        "energy_sources": [{"source": "WIND", "percentage": 100.0}],
        "supplier_name": "Green Co",
    },
    "last_updated": NOW_TEXT,
}


def test_complete_location_is_the_expected_ocpi_json_when_every_field_is_given() -> None:
    (site,) = parse_toml(COMPLETE_TOML)
    assert ocpi_json(site) == COMPLETE_JSON
    assert site.bindings == (
        EvseBinding(
            evse_uid="LOC-AMS-1-1",
            charger_id="CP-DUO",
            ocpp_evse_id=2,
            connectors=(("A", 2), ("1", 1)),
        ),
    )


def test_result_is_the_same_when_the_input_is_json() -> None:
    entries = tomllib.loads(COMPLETE_TOML)["locations"]
    from_json = parse(json.loads(json.dumps(entries)))
    assert from_json == parse(entries)
    assert ocpi_json(from_json[0]) == COMPLETE_JSON


def test_ocpi_json_round_trips_when_parsed_back() -> None:
    (site,) = parse_toml(COMPLETE_TOML)
    assert Location.model_validate_json(site.location.model_dump_json()) == site.location


def _operator_form(example: dict[str, Any]) -> dict[str, Any]:
    """A spec example written as the operator would: without what the bridge sets, each EVSE
    bound to connectorId N of a 1.6 charger."""
    entry = {
        k: v for k, v in example.items() if k not in ("country_code", "party_id", "last_updated")
    }
    entry["evses"] = []
    for n, evse in enumerate(example["evses"], start=1):
        item = {k: v for k, v in evse.items() if k not in ("last_updated", "status")}
        item.update(charger="SPEC-CP", ocpp_evse_id=n)
        item["connectors"] = [
            {k: v for k, v in c.items() if k != "last_updated"} for c in evse["connectors"]
        ]
        entry["evses"].append(item)
    return entry


def _expected_from(example: dict[str, Any]) -> dict[str, Any]:
    expected = copy.deepcopy(example)
    expected.update(country_code="NL", party_id="CPO", last_updated=NOW_TEXT)
    for evse in expected["evses"]:
        evse.update(status="UNKNOWN", last_updated=NOW_TEXT)
        if "capabilities" not in evse:
            sockets = any(c["format"] == "SOCKET" for c in evse["connectors"])
            evse["capabilities"] = ["REMOTE_START_STOP_CAPABLE"] + (
                ["UNLOCK_CAPABLE"] if sockets else []
            )
        for connector in evse["connectors"]:
            connector["last_updated"] = NOW_TEXT
    return expected


@pytest.mark.parametrize(
    "name",
    sorted(
        path.name
        for path in EXAMPLES.glob("location_example*.json")
        if "country_code" in json.loads(path.read_text(encoding="utf-8"))
    ),
)
def test_spec_example_is_reproduced_when_written_as_operator_input(name: str) -> None:
    example = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    chargers = {"SPEC-CP": ChargerFacts(charger_id="SPEC-CP", ocpp_version=OcppVersion.V16)}
    (site,) = parse([_operator_form(example)], chargers=chargers, operator=None)
    assert ocpi_json(site) == _expected_from(example)
    assert [b.evse_uid for b in site.bindings] == [e["uid"] for e in example["evses"]]


# --- defaults -------------------------------------------------------------------------------


def test_everything_defaults_from_the_charger_when_it_reported_a_2_0_1_inventory() -> None:
    entry = a_location(
        evses=[
            {"charger": "CP-DUO", "ocpp_evse_id": 1, "connector": {"max_voltage": 230}},
            {
                "charger": "CP-DUO",
                "ocpp_evse_id": 2,
                "connector": {"max_voltage": 920, "max_amperage": 125},
            },
        ]
    )
    entry["evses"][0]["connectors"] = [{"id": "1", "max_amperage": 32}]
    (site,) = parse([entry])
    location = ocpi_json(site)
    assert location["publish"] is True
    assert location["operator"] == {"name": "Example CPO", "website": "https://cpo.example.com"}
    assert location["last_updated"] == NOW_TEXT
    first, second = location["evses"]
    assert first["uid"] == "CP-DUO-1"
    assert first["status"] == "UNKNOWN"
    assert first["capabilities"] == ["REMOTE_START_STOP_CAPABLE"]  # a cable cannot be unlocked
    assert first["connectors"] == [
        {
            "id": "1",
            "standard": "IEC_62196_T2",
            "format": "CABLE",
            "power_type": "AC_3_PHASE",
            "max_voltage": 230,
            "max_amperage": 32,
            "max_electric_power": 22000,
            "last_updated": NOW_TEXT,
        }
    ]
    assert second["uid"] == "CP-DUO-2"
    assert [
        (c["id"], c["standard"], c["format"], c["power_type"]) for c in second["connectors"]
    ] == [
        ("1", "IEC_62196_T2_COMBO", "CABLE", "DC"),
        ("2", "CHADEMO", "CABLE", "DC"),
    ]
    assert {c["max_electric_power"] for c in second["connectors"]} == {50000}
    assert site.bindings == (
        EvseBinding(
            evse_uid="CP-DUO-1", charger_id="CP-DUO", ocpp_evse_id=1, connectors=(("1", 1),)
        ),
        EvseBinding(
            evse_uid="CP-DUO-2",
            charger_id="CP-DUO",
            ocpp_evse_id=2,
            connectors=(("1", 1), ("2", 2)),
        ),
    )


def test_ocpp_evse_id_defaults_to_the_only_evse_when_the_charger_reported_one() -> None:
    (site,) = parse([a_location()])
    (evse,) = ocpi_json(site)["evses"]
    assert evse["uid"] == "CP-201-1"
    assert evse["capabilities"] == ["REMOTE_START_STOP_CAPABLE", "UNLOCK_CAPABLE"]  # sType2
    assert evse["connectors"][0]["format"] == "SOCKET"
    assert site.bindings[0].ocpp_evse_id == 1


def test_one_evse_per_connector_id_when_the_charger_speaks_1_6() -> None:
    entry = a_location(
        evses=[{"charger": "CP-16", "ocpp_evse_id": n, "connector": dict(TEMPLATE)} for n in (1, 2)]
    )
    (site,) = parse([entry])
    evses = ocpi_json(site)["evses"]
    assert [e["uid"] for e in evses] == ["CP-16-1", "CP-16-2"]
    assert all([c["id"] for c in e["connectors"]] == ["1"] for e in evses)
    assert evses[0]["connectors"][0] == {**TEMPLATE, "id": "1", "last_updated": NOW_TEXT}
    assert site.bindings == tuple(
        EvseBinding(
            evse_uid=f"CP-16-{n}", charger_id="CP-16", ocpp_evse_id=n, connectors=(("1", 1),)
        )
        for n in (1, 2)
    )


def test_connector_1_is_assumed_when_a_1_6_charger_has_not_reported_its_connector_count() -> None:
    chargers = {"NEW": ChargerFacts(charger_id="NEW", ocpp_version=OcppVersion.V16)}
    entry = a_location(evses=[{"charger": "NEW", "ocpp_evse_id": 3, "connector": TEMPLATE}])
    (site,) = parse([entry], chargers=chargers)
    assert site.bindings[0].connectors == (("1", 1),)
    assert site.location.evses is not None
    assert site.location.evses[0].uid == "NEW-3"


def test_connectors_must_be_listed_when_the_charger_never_connected() -> None:
    chargers = {"NEW": ChargerFacts(charger_id="NEW")}
    entry = a_location(evses=[{"charger": "NEW", "connector": TEMPLATE}])
    assert problems_of([entry], chargers=chargers) == (
        f"{LOC}: evses[0]: ocpp_evse_id: required: charger 'NEW' has not reported its EVSEs yet",
    )
    entry["evses"][0]["ocpp_evse_id"] = 1
    assert problems_of([entry], chargers=chargers) == (
        f"{LOC}: evses[0] (uid 'NEW-1'): connectors: charger 'NEW' reported no connectors for "
        "EVSE 1: list them in [[locations.evses.connectors]]",
    )
    entry["evses"][0]["connectors"] = [{"id": "1"}]
    (site,) = parse([entry], chargers=chargers)
    assert site.bindings[0].connectors == (("1", 1),)


@pytest.mark.parametrize(
    ("connector_type", "standard", "connector_format", "power_type"),
    [
        ("cCCS1", "IEC_62196_T1_COMBO", "CABLE", "DC"),
        ("cCCS2", "IEC_62196_T2_COMBO", "CABLE", "DC"),
        ("cG105", "CHADEMO", "CABLE", "DC"),
        ("cChaoJi", "CHAOJI", "CABLE", "DC"),
        ("cTesla", "TESLA_S", "CABLE", "AC_1_PHASE"),
        ("cType1", "IEC_62196_T1", "CABLE", "AC_1_PHASE"),
        ("cType2", "IEC_62196_T2", "CABLE", "AC_1_PHASE"),
        ("sType2", "IEC_62196_T2", "SOCKET", "AC_1_PHASE"),
        ("sType3", "IEC_62196_T3C", "SOCKET", "AC_1_PHASE"),
        ("s309-1P-16A", "IEC_60309_2_single_16", "SOCKET", "AC_1_PHASE"),
        ("s309-3P-16A", "IEC_60309_2_three_16", "SOCKET", "AC_1_PHASE"),
        ("s309-3P-32A", "IEC_60309_2_three_32", "SOCKET", "AC_1_PHASE"),
        ("sCEE-7-7", "DOMESTIC_F", "SOCKET", "AC_1_PHASE"),
        ("sBS1361", "DOMESTIC_G", "SOCKET", "AC_1_PHASE"),
    ],
)
def test_connector_type_maps_to_ocpi_when_reported(
    connector_type: str, standard: str, connector_format: str, power_type: str
) -> None:
    charger = a_charger_201(
        "CP",
        EvseInventory(
            ocpp_evse_id=1,
            connectors=(ConnectorInventory(connector_id=1, connector_type=connector_type),),
            supply_phases=1,
        ),
    )
    entry = a_location(evses=[an_evse(charger="CP")])
    (site,) = parse([entry], chargers={"CP": charger})
    (connector,) = ocpi_json(site)["evses"][0]["connectors"]
    assert (connector["standard"], connector["format"], connector["power_type"]) == (
        standard,
        connector_format,
        power_type,
    )


@pytest.mark.parametrize(
    "connector_type", ["Other1PhMax16A", "wInductive", "Undetermined", "Unknown", "Pan"]
)
def test_standard_must_be_given_when_the_reported_type_has_no_ocpi_equivalent(
    connector_type: str,
) -> None:
    charger = a_charger_201(
        "CP",
        EvseInventory(
            ocpp_evse_id=1,
            connectors=(ConnectorInventory(connector_id=1, connector_type=connector_type),),
            supply_phases=3,
        ),
    )
    problems = problems_of([a_location(evses=[an_evse(charger="CP")])], chargers={"CP": charger})
    assert (
        f"{LOC}: evses[0] (uid 'CP-1'): connector '1' (reported by charger 'CP'): standard: "
        f"required: charger 'CP' reported connector type {connector_type!r}, which has no OCPI "
        "standard; set it in the EVSE's connector template or on the connector in "
        "[[locations.evses.connectors]]"
    ) in problems
    assert len(problems) == 2  # standard and format


def test_connector_entry_beats_template_which_beats_the_report() -> None:
    evse = an_evse(
        connector={"max_voltage": 230, "max_amperage": 16, "power_type": "AC_1_PHASE"},
        connectors=[{"id": "1", "max_amperage": 32, "max_electric_power": 7400}],
    )
    (site,) = parse([a_location(evses=[evse])])
    (connector,) = ocpi_json(site)["evses"][0]["connectors"]
    assert connector == {
        "id": "1",
        "standard": "IEC_62196_T2",  # reported sType2
        "format": "SOCKET",  # reported sType2
        "power_type": "AC_1_PHASE",  # template over the reported 3 phases
        "max_voltage": 230,  # template
        "max_amperage": 32,  # entry over template
        "max_electric_power": 7400,  # entry over the reported 11000 W
        "last_updated": NOW_TEXT,
    }


def test_connector_ids_default_from_each_other() -> None:
    evse = an_evse(
        charger="CP-DUO",
        ocpp_evse_id=2,
        connector={"max_voltage": 920, "max_amperage": 125},
        connectors=[{"ocpp_connector_id": 2}, {"id": "1"}],
    )
    (site,) = parse([a_location(evses=[evse])])
    assert site.bindings[0].connectors == (("2", 2), ("1", 1))


def test_evse_without_charger_has_no_binding_when_planned() -> None:
    evse = {"uid": "FUTURE-1", "status": "PLANNED", "connectors": [{"id": "1", **TEMPLATE}]}
    (site,) = parse([a_location(evses=[evse, an_evse()])])
    first, second = ocpi_json(site)["evses"]
    assert (first["uid"], first["status"]) == ("FUTURE-1", "PLANNED")
    assert second["status"] == "UNKNOWN"
    assert [b.evse_uid for b in site.bindings] == ["CP-201-1"]


def test_removed_evse_keeps_its_binding_when_it_names_a_charger() -> None:
    (site,) = parse([a_location(evses=[an_evse(status="REMOVED")])])
    assert ocpi_json(site)["evses"][0]["status"] == "REMOVED"
    assert site.bindings[0].evse_uid == "CP-201-1"


def test_location_without_evses_is_kept_with_an_empty_list() -> None:
    (site,) = parse([a_location(evses=None)], operator=None)
    assert site.location.evses == []
    assert site.location.operator is None
    assert site.bindings == ()


def test_parse_location_reads_one_location_for_the_admin_api() -> None:
    site = parse_location(
        a_location(),
        "admin API",
        country_code="NL",
        party_id="CPO",
        chargers=CHARGERS,
        operator=CPO,
        now=NOW,
    )
    assert site.location.id == "LOC-1"
    with pytest.raises(InventoryError) as exc:
        parse_location(
            a_location(city=None),
            "admin API",
            country_code="NL",
            party_id="CPO",
            chargers=CHARGERS,
            operator=CPO,
            now=NOW,
        )
    assert exc.value.problems == ("admin API: location (id 'LOC-1'): city: required",)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_locations(
            [],
            "site.toml",
            country_code="NL",
            party_id="CPO",
            chargers={},
            operator=None,
            now=datetime(2024, 1, 1),
        )


# --- problems -------------------------------------------------------------------------------

E0 = f"{LOC}: evses[0] (uid 'CP-201-1')"


def _with_evse(**changes: Any) -> list[dict[str, Any]]:
    return [a_location(evses=[an_evse(**changes)])]


def _with_connector(**fields: Any) -> list[dict[str, Any]]:
    return _with_evse(connectors=[{"id": "1", **fields}])


PROBLEMS: list[tuple[str, list[dict[str, Any]], str]] = [
    (
        "unknown charger",
        _with_evse(charger="CP-999"),
        f"{LOC}: evses[0]: charger: unknown charger 'CP-999' (not a registered charger nor one "
        "of the file's [[chargers]])",
    ),
    (
        "charger id in the wrong case",
        _with_evse(charger="cp-201"),
        f"{LOC}: evses[0]: charger: unknown charger 'cp-201' (did you mean 'CP-201'?)",
    ),
    (
        "charger missing",
        _with_evse(charger=None),
        f"{LOC}: evses[0]: charger: required (unless status is PLANNED or REMOVED)",
    ),
    (
        "charger EVSE bound twice",
        [a_location(evses=[an_evse(), an_evse(uid="OTHER")])],
        f"{LOC}: evses[1] (uid 'OTHER'): charger: EVSE 1 of charger 'CP-201' is already bound "
        f"to locations[0] (id 'LOC-1'): evses[0] (uid 'CP-201-1')",
    ),
    (
        "charger EVSE bound twice across locations",
        [
            a_location(),
            a_location(id="LOC-2", evses=[an_evse(uid="OTHER", ocpp_evse_id=1)]),
        ],
        "site.toml: locations[1] (id 'LOC-2'): evses[0] (uid 'OTHER'): ocpp_evse_id: EVSE 1 of "
        "charger 'CP-201' is already bound to locations[0] (id 'LOC-1'): evses[0] (uid "
        "'CP-201-1')",
    ),
    (
        "1.6 connectorId bound twice",
        [
            a_location(
                evses=[
                    an_evse(charger="CP-16", ocpp_evse_id=2, connector=TEMPLATE),
                    an_evse(charger="CP-16", ocpp_evse_id=2, connector=TEMPLATE, uid="X"),
                ]
            )
        ],
        f"{LOC}: evses[1] (uid 'X'): ocpp_evse_id: connectorId 2 of charger 'CP-16' is already "
        "bound",
    ),
    (
        "ocpp_evse_id the charger does not have",
        _with_evse(ocpp_evse_id=3),
        f"{LOC}: evses[0]: ocpp_evse_id: charger 'CP-201' reported no EVSE 3 (it has 1)",
    ),
    (
        "1.6 connectorId the charger does not have",
        _with_evse(charger="CP-16", ocpp_evse_id=3, connector=TEMPLATE),
        f"{LOC}: evses[0]: ocpp_evse_id: charger 'CP-16' reported no connectorId 3 (it has 1, 2)",
    ),
    (
        "ocpp_evse_id missing on a charger with several EVSEs",
        _with_evse(charger="CP-DUO"),
        f"{LOC}: evses[0]: ocpp_evse_id: required: charger 'CP-DUO' reported 2 EVSEs (1, 2)",
    ),
    (
        "ocpp_evse_id not a positive integer",
        _with_evse(ocpp_evse_id="1"),
        f"{LOC}: evses[0]: ocpp_evse_id: expected a positive integer, got string '1'",
    ),
    (
        "ocpp_connector_id the charger does not have",
        _with_connector(ocpp_connector_id=2),
        f"{E0}: connectors[0].ocpp_connector_id: charger 'CP-201' reported no connector 2 on "
        "EVSE 1 (it has 1)",
    ),
    (
        "connector id naming a connector the charger does not have",
        _with_evse(connectors=[{"id": "7"}]),
        f"{E0}: connectors[0].id: charger 'CP-201' reported no connector 7 on EVSE 1 (it has 1)",
    ),
    (
        "connector id that is not a number without ocpp_connector_id",
        _with_evse(connectors=[{"id": "A"}]),
        f"{E0}: connectors[0].ocpp_connector_id: required: id 'A' is not an OCPP connector number",
    ),
    (
        "connector without any id",
        _with_evse(connectors=[{"max_amperage": 16}]),
        f"{E0}: connectors[0].id: required (or ocpp_connector_id)",
    ),
    (
        "duplicate location id",
        [a_location(), a_location(id="loc-1", evses=[])],
        "site.toml: locations[1] (id 'loc-1'): id: duplicate location id 'loc-1' (also "
        "locations[0] (id 'LOC-1'))",
    ),
    (
        "duplicate EVSE uid across locations",
        [
            a_location(),
            a_location(
                id="LOC-2",
                evses=[
                    {
                        "uid": "cp-201-1",
                        "status": "PLANNED",
                        "connectors": [{"id": "1", **TEMPLATE}],
                    }
                ],
            ),
        ],
        "site.toml: locations[1] (id 'LOC-2'): evses[0] (uid 'cp-201-1'): uid: duplicate EVSE "
        "uid 'cp-201-1' (also locations[0] (id 'LOC-1'): evses[0] (uid 'CP-201-1'))",
    ),
    (
        "duplicate connector id",
        _with_evse(
            charger="CP-DUO",
            ocpp_evse_id=2,
            connectors=[{"id": "A", "ocpp_connector_id": 1}, {"id": "a", "ocpp_connector_id": 2}],
        ),
        f"{LOC}: evses[0] (uid 'CP-DUO-2'): connectors[1].id: duplicate connector id 'a' (also "
        "connectors[0])",
    ),
    (
        "same OCPP connector twice",
        _with_evse(connectors=[{"id": "A", "ocpp_connector_id": 1}, {"id": "1"}]),
        f"{E0}: connectors[1].ocpp_connector_id: OCPP connector 1 is already connectors[0]",
    ),
    (
        "latitude out of range",
        [a_location(coordinates={"latitude": "91.00000", "longitude": "4.90030"})],
        f"{LOC}: coordinates.latitude: 91.00000 is outside -90..90 degrees",
    ),
    (
        "longitude out of range",
        [a_location(coordinates={"latitude": "52.37890", "longitude": "-180.50000"})],
        f"{LOC}: coordinates.longitude: -180.50000 is outside -180..180 degrees",
    ),
    (
        "coordinates with 4 decimals",
        [a_location(coordinates={"latitude": "52.3789", "longitude": "4.90030"})],
        f"{LOC}: coordinates.latitude: '52.3789' is not decimal degrees with 5 to 7 decimals "
        '(write it like "52.37890")',
    ),
    (
        "coordinates with 8 decimals",
        [a_location(coordinates={"latitude": "52.37890", "longitude": "4.12345678"})],
        f"{LOC}: coordinates.longitude: '4.12345678' is not decimal degrees with 5 to 7 decimals",
    ),
    (
        "EVSE coordinates as numbers",
        _with_evse(coordinates={"latitude": 52.3789, "longitude": 4.9003}),
        f'{E0}: coordinates.latitude: write coordinates as strings like "52.37890", not as '
        "numbers (got 52.3789)",
    ),
    (
        "short enum",
        _with_connector(format="PLUG"),
        f"{E0}: connectors[0].format: 'PLUG' is not one of SOCKET, CABLE",
    ),
    (
        "short enum in the template",
        _with_evse(connector={**TEMPLATE, "power_type": "AC"}),
        f"{E0}: connector.power_type: 'AC' is not one of AC_1_PHASE, AC_2_PHASE, "
        "AC_2_PHASE_SPLIT, AC_3_PHASE, DC",
    ),
    (
        "long enum",
        _with_connector(standard="TYPE2"),
        f"{E0}: connectors[0].standard: 'TYPE2' is not an OCPI ConnectorType value",
    ),
    (
        "enum in a list",
        [a_location(facilities=["CAFE", "BAR"])],
        f"{LOC}: facilities[1]: 'BAR' is not an OCPI Facility value",
    ),
    (
        "enum in a nested table",
        [
            a_location(
                images=[{"url": "https://x.example/a.png", "category": "LOGO", "type": "png"}]
            )
        ],
        f"{LOC}: images[0].category: 'LOGO' is not one of CHARGER, ENTRANCE, LOCATION, NETWORK, "
        "OPERATOR, OTHER, OWNER",
    ),
    (
        "location id too long",
        [a_location(id="L" * 37)],
        f"site.toml: locations[0] (id '{'L' * 37}'): id: String should have at most 36 "
        "characters (got 37)",
    ),
    (
        "city too long",
        [a_location(city="C" * 46)],
        f"{LOC}: city: String should have at most 45 characters (got 46)",
    ),
    (
        "physical reference too long",
        _with_evse(physical_reference="P" * 17),
        f"{E0}: physical_reference: String should have at most 16 characters (got 17)",
    ),
    (
        "tariff id too long",
        _with_connector(tariff_ids=["T" * 37]),
        f"{E0}: connectors[0].tariff_ids[0]: String should have at most 36 characters (got 37)",
    ),
    (
        "uid not printable ASCII",
        _with_evse(uid="EVSE-é"),
        f"{LOC}: evses[0] (uid 'EVSE-é'): uid: 'EVSE-é' is not printable ASCII",
    ),
    (
        "eMI3 id malformed",
        _with_evse(evse_id="NL-CPO-1"),
        f"{E0}: evse_id: 'NL-CPO-1' is not an eMI3 EVSE ID",
    ),
    (
        "unknown key on the location",
        [a_location(adress="Stationsplein 1")],
        f"{LOC}: adress: unknown key (did you mean 'address'?)",
    ),
    (
        "unknown key in coordinates",
        [a_location(coordinates={"latitude": "52.37890", "longitude": "4.90030", "alt": "1"})],
        f"{LOC}: coordinates.alt: unknown key (expected one of latitude, longitude)",
    ),
    (
        "unknown key in opening hours",
        [
            a_location(
                opening_times={
                    "twentyfourseven": False,
                    "regular_hours": [{"weekday": 1, "period_begin": "08:00", "end": "20:00"}],
                }
            )
        ],
        f"{LOC}: opening_times.regular_hours[0].end: unknown key",
    ),
    (
        "unknown key in the operator logo",
        [a_location(operator={"name": "X", "logo": {"url": "https://x.example", "size": 1}})],
        f"{LOC}: operator.logo.size: unknown key",
    ),
    (
        "unknown key on the EVSE",
        _with_evse(ocpp_evse=1),
        f"{E0}: ocpp_evse: unknown key (did you mean 'ocpp_evse_id'?)",
    ),
    (
        "unknown key in EVSE images",
        _with_evse(images=[{"url": "https://x.example/a.png", "category": "CHARGER", "typ": "x"}]),
        f"{E0}: images[0].typ: unknown key (did you mean 'type'?)",
    ),
    (
        "unknown key in the connector template",
        _with_evse(connector={**TEMPLATE, "voltage": 230}),
        f"{E0}: connector.voltage: unknown key",
    ),
    (
        "connector id in the template",
        _with_evse(connector={**TEMPLATE, "id": "1"}),
        f"{E0}: connector.id: not allowed in the template",
    ),
    (
        "unknown key on a connector",
        _with_connector(max_power=11000),
        f"{E0}: connectors[0].max_power: unknown key (did you mean 'max_electric_power'?)",
    ),
    (
        "last_updated given on a connector",
        _with_connector(last_updated="2024-01-01T00:00:00Z"),
        f"{E0}: connectors[0].last_updated: not allowed: set by the bridge",
    ),
    (
        "country_code given on a location",
        [a_location(country_code="DE")],
        f"{LOC}: country_code: not allowed: set by the bridge from its OCPI settings",
    ),
    (
        "publish not a boolean",
        [a_location(publish="yes")],
        f"{LOC}: publish: Input should be a valid boolean (got string 'yes')",
    ),
    (
        "publish_allowed_to while published",
        [a_location(publish_allowed_to=[{"group_id": "G1"}])],
        f"{LOC}: publish_allowed_to: only allowed when publish is false",
    ),
    (
        "voltage as a float",
        _with_connector(max_voltage=230.0),
        f"{E0}: connectors[0].max_voltage: Input should be a valid integer (got float 230.0)",
    ),
    (
        "voltage not positive",
        _with_connector(max_voltage=0),
        f"{E0}: connectors[0].max_voltage: Input should be greater than 0",
    ),
    (
        "evses not a list",
        [a_location(evses={"charger": "CP-201"})],
        f"{LOC}: evses: expected a list of tables, got a table",
    ),
    (
        "connectors not a list",
        _with_evse(connectors={"id": "1"}),
        f"{E0}: connectors: expected a list of tables, got a table",
    ),
    (
        "coordinates not a table",
        [a_location(coordinates="52.37890,4.90030")],
        f"{LOC}: coordinates: expected a table (JSON object), got string '52.37890,4.90030'",
    ),
    (
        "required location field missing",
        [a_location(time_zone=None)],
        f"{LOC}: time_zone: required",
    ),
    (
        "unknown time zone",
        [a_location(time_zone="Europe/Amsterdm")],
        f"{LOC}: time_zone: unknown IANA time zone 'Europe/Amsterdm'",
    ),
    (
        "country not alpha-3",
        [a_location(country="NL")],
        f"{LOC}: country: 'NL' is not an ISO 3166-1 alpha-3 country code in capitals",
    ),
    (
        "live status declared",
        _with_evse(status="AVAILABLE"),
        f"{E0}: status: 'AVAILABLE': only PLANNED or REMOVED can be declared",
    ),
    (
        "EVSE without charger nor uid",
        [a_location(evses=[{"status": "PLANNED", "connectors": [{"id": "1", **TEMPLATE}]}])],
        f"{LOC}: evses[0]: uid: required when the EVSE has no charger",
    ),
    (
        "EVSE without any connector",
        [a_location(evses=[{"uid": "E1", "status": "PLANNED", "connector": TEMPLATE}])],
        f"{LOC}: evses[0] (uid 'E1'): connectors: required when the EVSE has no charger: list "
        "them in [[locations.evses.connectors]]",
    ),
    (
        "EVSE with an empty connector list",
        _with_evse(connectors=[]),
        f"{E0}: connectors: at least one connector is required",
    ),
    (
        "connector field nobody gave",
        _with_evse(connector={"max_voltage": 230}),
        f"{E0}: connector '1' (reported by charger 'CP-201'): max_amperage: required: OCPP "
        "chargers do not report it",
    ),
    (
        "connector field the charger did not report",
        _with_evse(
            charger="CP-16", ocpp_evse_id=1, connector={"max_voltage": 230, "max_amperage": 16}
        ),
        f"{LOC}: evses[0] (uid 'CP-16-1'): connector '1' (reported by charger 'CP-16'): "
        "standard: required: charger 'CP-16' did not report it",
    ),
    (
        "regular hours in the wrong order",
        [
            a_location(
                opening_times={
                    "twentyfourseven": False,
                    "regular_hours": [
                        {"weekday": 1, "period_begin": "20:00", "period_end": "08:00"}
                    ],
                }
            )
        ],
        f"{LOC}: opening_times.regular_hours[0].period_end: must be later than period_begin "
        "(20:00)",
    ),
    (
        "location not a table",
        ["LOC-1"],  # type: ignore[list-item]
        "site.toml: locations[0]: expected a table, got string 'LOC-1'",
    ),
]


@pytest.mark.parametrize(
    ("entries", "message"),
    [pytest.param(entries, message, id=case) for case, entries, message in PROBLEMS],
)
def test_problem_names_file_object_and_field(entries: list[dict[str, Any]], message: str) -> None:
    problems = problems_of(entries)
    assert any(problem.startswith(message) for problem in problems), "\n".join(problems)


def test_default_uid_must_fit_when_the_charger_id_is_long() -> None:
    long_id = "CHARGER-" + "X" * 30
    chargers = {long_id: a_charger_201(long_id)}
    problems = problems_of(_with_evse(charger=long_id), chargers=chargers)
    assert problems == (
        f"{LOC}: evses[0] (uid '{long_id}-1'): uid: the default uid (charger-ocpp_evse_id): "
        "String should have at most 36 characters (got 40); set uid",
    )
    (site,) = parse(_with_evse(charger=long_id, uid="SHORT-1"), chargers=chargers)
    assert site.bindings[0].charger_id == long_id


def test_default_uid_must_be_printable_ascii_when_the_charger_id_is_not() -> None:
    chargers = {"LADESÄULE": a_charger_201("LADESÄULE")}
    problems = problems_of(_with_evse(charger="LADESÄULE"), chargers=chargers)
    assert problems == (
        f"{LOC}: evses[0] (uid 'LADESÄULE-1'): uid: the default uid (charger-ocpp_evse_id): "
        "'LADESÄULE-1' is not printable ASCII; set uid",
    )


def test_every_problem_is_reported_when_several_objects_are_wrong() -> None:
    entries = [
        a_location(
            adress="x",
            coordinates={"latitude": 52.3789, "longitude": "4.90030"},
            evses=[
                an_evse(charger="NOPE"),
                an_evse(connectors=[{"id": "1", "format": "PLUG"}, {"id": "1"}]),
            ],
        ),
        a_location(id="LOC-2", city=None, evses=[]),
        a_location(id="LOC-1", evses=[]),
    ]
    problems = problems_of(entries)
    e1 = f"{LOC}: evses[1] (uid 'CP-201-1')"
    assert problems == (
        f"{LOC}: adress: unknown key (did you mean 'address'?)",
        f"{LOC}: evses[0]: charger: unknown charger 'NOPE' (not a registered charger nor one of "
        "the file's [[chargers]])",
        f"{e1}: connectors[1].id: duplicate connector id '1' (also connectors[0])",
        f"{e1}: connectors[1].ocpp_connector_id: OCPP connector 1 is already connectors[0]",
        f"{e1}: connectors[0].format: 'PLUG' is not one of SOCKET, CABLE",
        f'{LOC}: coordinates.latitude: write coordinates as strings like "52.37890", not as '
        "numbers (got 52.3789)",
        "site.toml: locations[1] (id 'LOC-2'): city: required",
        "site.toml: locations[2] (id 'LOC-1'): id: duplicate location id 'LOC-1' (also "
        "locations[0] (id 'LOC-1'))",
    )


def test_problems_read_the_same_when_the_input_is_toml() -> None:
    text = """
[[locations]]
id = "LOC-1"
address = "Stationsplein 1"
city = "Amsterdam"
country = "NLD"
coordinates = { latitude = 52.3789, longitude = "4.90030" }
time_zone = "Europe/Amsterdam"
  [[locations.evses]]
  charger = "CP-201"
  connector = { max_voltage = 230.0, max_amperage = 16 }
"""
    with pytest.raises(InventoryError) as exc:
        parse_toml(text)
    assert exc.value.problems == (
        f"{E0}: connector.max_voltage: Input should be a valid integer (got float 230.0)",
        f'{LOC}: coordinates.latitude: write coordinates as strings like "52.37890", not as '
        "numbers (got 52.3789)",
    )


def test_entries_must_be_a_list() -> None:
    with pytest.raises(InventoryError, match=r"^site\.toml: locations: expected a list"):
        parse({"id": "LOC-1"})  # type: ignore[arg-type]


# --- the site file --------------------------------------------------------------------------


def test_site_keeps_the_raw_locations_and_its_source(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        '[[chargers]]\nid = "CP-201"\nallow_no_auth = true\n' + COMPLETE_TOML, encoding="utf-8"
    )
    site = load_site(path)
    assert site.source == str(path)
    assert [c.charger_id for c in site.chargers] == ["CP-201"]
    assert site.locations == tuple(tomllib.loads(COMPLETE_TOML)["locations"])
    (parsed,) = parse(list(site.locations))
    assert ocpi_json(parsed) == COMPLETE_JSON


def test_site_without_locations_has_none() -> None:
    site = parse_site({"chargers": [{"id": "A"}]}, "site.toml")
    assert site.locations == ()
    assert site.source == "site.toml"


def test_site_file_refuses_an_unknown_top_level_key() -> None:
    with pytest.raises(SiteFileError) as exc:
        parse_site({"chargers": [], "location": [{"id": "L"}]}, "site.toml")
    assert str(exc.value) == (
        "site.toml: unknown top-level key 'location' "
        "(expected chargers, tokens, locations, tariffs)"
    )


def test_site_file_refuses_locations_that_are_not_tables() -> None:
    with pytest.raises(SiteFileError, match=r"site\.toml: locations: expected an array of tables"):
        parse_site({"locations": {"id": "L"}}, "site.toml")


SINGLE_PROBLEM_CASES = {
    "unknown charger",
    "charger missing",
    "ocpp_evse_id the charger does not have",
    "ocpp_connector_id the charger does not have",
    "connector id naming a connector the charger does not have",
    "connector id that is not a number without ocpp_connector_id",
    "connector without any id",
    "duplicate EVSE uid across locations",
    "EVSE without charger nor uid",
}


@pytest.mark.parametrize(
    "entries",
    [
        pytest.param(entries, id=case)
        for case, entries, _ in PROBLEMS
        if case in SINGLE_PROBLEM_CASES
    ],
)
def test_one_mistake_gives_one_message_when_other_fields_depend_on_it(
    entries: list[dict[str, Any]],
) -> None:
    assert len(problems_of(entries)) == 1


def test_null_in_json_means_not_given() -> None:
    entry = a_location(evses=[{**an_evse(), "uid": None, "evse_id": None}])
    entry["name"] = None
    (site,) = parse([entry])
    assert site.bindings[0].evse_uid == "CP-201-1"
    assert site.location.name is None


def test_charger_must_be_a_string() -> None:
    assert problems_of(_with_evse(charger=201)) == (
        f"{LOC}: evses[0]: charger: expected a charger id, got integer 201",
    )
