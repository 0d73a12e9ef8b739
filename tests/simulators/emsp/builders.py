"""Valid OCPI 2.2.1 objects of the CPO NL/CPO, as JSON-ready dicts, for the tests."""

from __future__ import annotations

from typing import Any


def a_connector(
    connector_id: str = "1", last_updated: str = "2024-01-01T10:00:00Z"
) -> dict[str, Any]:
    return {
        "id": connector_id,
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 16,
        "tariff_ids": ["T1"],
        "last_updated": last_updated,
    }


def an_evse(uid: str = "E1", last_updated: str = "2024-01-01T10:00:00Z") -> dict[str, Any]:
    return {
        "uid": uid,
        "evse_id": f"NL*CPO*E{uid}",
        "status": "AVAILABLE",
        "connectors": [a_connector(last_updated=last_updated)],
        "last_updated": last_updated,
    }


def a_location(location_id: str = "L1", **overrides: Any) -> dict[str, Any]:
    location = {
        "country_code": "NL",
        "party_id": "CPO",
        "id": location_id,
        "publish": True,
        "address": "Street 1",
        "city": "Town",
        "country": "NLD",
        "coordinates": {"latitude": "52.000000", "longitude": "4.000000"},
        "evses": [an_evse()],
        "time_zone": "Europe/Amsterdam",
        "last_updated": "2024-01-01T10:00:00Z",
    }
    location.update(overrides)
    return location


def a_session(session_id: str = "S1", **overrides: Any) -> dict[str, Any]:
    session = {
        "country_code": "NL",
        "party_id": "CPO",
        "id": session_id,
        "start_date_time": "2024-01-01T10:00:00Z",
        "kwh": 0,
        "cdr_token": {
            "country_code": "NL",
            "party_id": "EMS",
            "uid": "TAG1",
            "type": "RFID",
            "contract_id": "NL-EMS-C1",
        },
        "auth_method": "WHITELIST",
        "location_id": "L1",
        "evse_uid": "E1",
        "connector_id": "1",
        "currency": "EUR",
        "status": "ACTIVE",
        "last_updated": "2024-01-01T10:00:00Z",
    }
    session.update(overrides)
    return session


def a_cdr(cdr_id: str = "C1", **overrides: Any) -> dict[str, Any]:
    cdr = {
        "country_code": "NL",
        "party_id": "CPO",
        "id": cdr_id,
        "start_date_time": "2024-01-01T10:00:00Z",
        "end_date_time": "2024-01-01T11:00:00Z",
        "session_id": "S1",
        "cdr_token": a_session()["cdr_token"],
        "auth_method": "WHITELIST",
        "cdr_location": {
            "id": "L1",
            "address": "Street 1",
            "city": "Town",
            "country": "NLD",
            "coordinates": {"latitude": "52.000000", "longitude": "4.000000"},
            "evse_uid": "E1",
            "evse_id": "NL*CPO*EE1",
            "connector_id": "1",
            "connector_standard": "IEC_62196_T2",
            "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE",
        },
        "currency": "EUR",
        "charging_periods": [
            {
                "start_date_time": "2024-01-01T10:00:00Z",
                "dimensions": [{"type": "ENERGY", "volume": 10.5}],
                "tariff_id": "T1",
            }
        ],
        "total_cost": {"excl_vat": 2.63, "incl_vat": 3.18},
        "total_energy": 10.5,
        "total_time": 1,
        "last_updated": "2024-01-01T11:00:01Z",
    }
    cdr.update(overrides)
    return cdr


def a_tariff(tariff_id: str = "T1", **overrides: Any) -> dict[str, Any]:
    tariff = {
        "country_code": "NL",
        "party_id": "CPO",
        "id": tariff_id,
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}]}],
        "last_updated": "2024-01-01T00:00:00Z",
    }
    tariff.update(overrides)
    return tariff
