"""Pure rules: OCPP statuses -> OCPI EVSE status, last_updated bumps and the PUTs a change
needs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.mapping.locations import (
    PutTarget,
    Target,
    puts_for,
    remove_location,
    replace_location,
    set_evse_status,
)
from bridge.mapping.statuses import to_ocpi_evse_status, to_ocpi_status
from bridge.ocpi.locations import Location, Status
from csms.domain.model import ConnectorStatus as C

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


# --- statuses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ocpp", "ocpi"),
    [
        (C.AVAILABLE, Status.AVAILABLE),
        (C.PREPARING, Status.CHARGING),
        (C.CHARGING, Status.CHARGING),
        (C.SUSPENDED_EV, Status.CHARGING),
        (C.SUSPENDED_EVSE, Status.CHARGING),
        (C.FINISHING, Status.CHARGING),
        (C.OCCUPIED, Status.CHARGING),
        (C.RESERVED, Status.RESERVED),
        (C.UNAVAILABLE, Status.INOPERATIVE),
        (C.FAULTED, Status.OUTOFORDER),
    ],
)
def test_each_ocpp_status_maps_as_design_decides(ocpp: C, ocpi: Status) -> None:
    assert to_ocpi_status(ocpp) is ocpi
    assert to_ocpi_evse_status([ocpp]) is ocpi


@pytest.mark.parametrize(
    ("connectors", "expected"),
    [
        ([C.AVAILABLE, C.OCCUPIED], Status.CHARGING),
        ([C.RESERVED, C.AVAILABLE], Status.RESERVED),
        ([C.FAULTED, C.AVAILABLE], Status.AVAILABLE),
        ([C.FAULTED, C.UNAVAILABLE], Status.INOPERATIVE),
        ([C.FAULTED, C.FAULTED], Status.OUTOFORDER),
        ([C.UNAVAILABLE, C.RESERVED, C.OCCUPIED], Status.CHARGING),
    ],
)
def test_connectors_of_an_evse_aggregate_by_precedence(
    connectors: list[C], expected: Status
) -> None:
    assert to_ocpi_evse_status(connectors) is expected


def test_evse_without_any_report_is_unknown() -> None:
    assert to_ocpi_evse_status([]) is Status.UNKNOWN


def test_whole_charger_unavailable_or_faulted_overrides_every_connector() -> None:
    assert to_ocpi_evse_status([C.CHARGING], whole_charger=C.UNAVAILABLE) is Status.INOPERATIVE
    assert to_ocpi_evse_status([C.AVAILABLE], whole_charger=C.FAULTED) is Status.OUTOFORDER
    assert to_ocpi_evse_status([C.CHARGING], whole_charger=C.AVAILABLE) is Status.CHARGING


def test_offline_charger_shows_unknown_whatever_was_reported() -> None:
    assert to_ocpi_evse_status([C.CHARGING], whole_charger=C.FAULTED, offline=True) is (
        Status.UNKNOWN
    )


# --- last_updated and pushes ------------------------------------------------------------------


def connector(cid: str = "1", **overrides: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "standard": "IEC_62196_T2",
        "format": "SOCKET",
        "power_type": "AC_3_PHASE",
        "max_voltage": 230,
        "max_amperage": 16,
        "last_updated": T0,
        **overrides,
    }


def evse(uid: str, *connectors: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    return {
        "uid": uid,
        "status": "AVAILABLE",
        "connectors": list(connectors) or [connector()],
        "last_updated": T0,
        **overrides,
    }


def location(*evses: dict[str, Any], **overrides: Any) -> Location:
    data: dict[str, Any] = {
        "country_code": "NL",
        "party_id": "CPO",
        "id": "LOC1",
        "publish": True,
        "address": "Street 1",
        "city": "Town",
        "country": "NLD",
        "coordinates": {"latitude": "52.00000", "longitude": "4.00000"},
        "time_zone": "Europe/Amsterdam",
        "evses": list(evses),
        "last_updated": T0,
        **overrides,
    }
    return Location.model_validate(data)


def stamped_now(model: Location, **overrides: Any) -> Location:
    """The same description as a parser produces it at ``T1``."""
    data = model.model_dump()
    data["last_updated"] = T1
    for e in data.get("evses") or ():
        e["last_updated"] = T1
        for c in e["connectors"]:
            c["last_updated"] = T1
    data.update(overrides)
    return Location.model_validate(data)


def test_unchanged_description_keeps_every_last_updated_and_needs_no_push() -> None:
    old = location(evse("E1"), evse("E2"))
    new = replace_location(old, stamped_now(old), T1)
    assert new == old
    assert puts_for(old, new) == []


def test_connector_change_bumps_its_evse_and_location_only() -> None:
    old = location(evse("E1"), evse("E2"))
    described = stamped_now(location(evse("E1", connector(max_amperage=32)), evse("E2")))
    new = replace_location(old, described, T1)
    e1, e2 = new.evses or []
    assert e1.connectors[0].last_updated == T1
    assert e1.last_updated == T1
    assert new.last_updated == T1
    assert e2.last_updated == T0
    assert e2.connectors[0].last_updated == T0
    assert puts_for(old, new) == [
        PutTarget(target=Target.CONNECTOR, evse_uid="E1", connector_id="1")
    ]


def test_evse_field_change_puts_the_evse() -> None:
    old = location(evse("E1"))
    new = replace_location(old, stamped_now(location(evse("E1", floor_level="-1"))), T1)
    assert new.evses is not None
    assert new.evses[0].connectors[0].last_updated == T0
    assert new.evses[0].last_updated == T1
    assert puts_for(old, new) == [PutTarget(target=Target.EVSE, evse_uid="E1")]


def test_added_connector_puts_the_evse() -> None:
    old = location(evse("E1"))
    described = stamped_now(location(evse("E1", connector("1"), connector("2"))))
    new = replace_location(old, described, T1)
    assert puts_for(old, new) == [PutTarget(target=Target.EVSE, evse_uid="E1")]


def test_location_field_change_puts_the_whole_location() -> None:
    old = location(evse("E1"))
    new = replace_location(old, stamped_now(old, name="New name"), T1)
    assert new.last_updated == T1
    assert new.evses is not None
    assert new.evses[0].last_updated == T0
    assert puts_for(old, new) == [PutTarget(target=Target.LOCATION)]


def test_new_location_is_put_whole() -> None:
    new = location(evse("E1"))
    assert replace_location(None, new, T1) is new
    assert puts_for(None, new) == [PutTarget(target=Target.LOCATION)]


def test_evse_left_out_of_the_description_is_kept_as_removed() -> None:
    old = location(evse("E1"), evse("E2"))
    new = replace_location(old, stamped_now(location(evse("E1"))), T1)
    assert [(e.uid, e.status, e.last_updated) for e in new.evses or []] == [
        ("E1", Status.AVAILABLE, T0),
        ("E2", Status.REMOVED, T1),
    ]
    assert new.last_updated == T1
    assert puts_for(old, new) == [PutTarget(target=Target.EVSE, evse_uid="E2")]
    again = replace_location(new, stamped_now(location(evse("E1"))), T1 + timedelta(hours=1))
    assert again == new  # already removed: no second bump


def test_removing_a_location_marks_every_evse_removed_once() -> None:
    old = location(evse("E1"), evse("E2", status="PLANNED"))
    new = remove_location(old, T1)
    assert {e.status for e in new.evses or []} == {Status.REMOVED}
    assert new.last_updated == T1
    assert remove_location(new, T1 + timedelta(hours=1)) is new


def test_status_change_bumps_evse_and_location_and_a_same_status_bumps_nothing() -> None:
    old = location(evse("E1"), evse("E2"))
    changed = set_evse_status(old, "e1", Status.CHARGING, T1)
    assert changed is not None
    new, e1 = changed
    assert e1.status is Status.CHARGING
    assert e1.last_updated == T1
    assert new.last_updated == T1
    assert new.evses is not None
    assert new.evses[1].last_updated == T0
    assert set_evse_status(new, "E1", Status.CHARGING, T1 + timedelta(seconds=1)) is None


def test_operator_controlled_statuses_are_not_overwritten_by_live_status() -> None:
    old = location(evse("E1", status="PLANNED"), evse("E2", status="REMOVED"))
    assert set_evse_status(old, "E1", Status.AVAILABLE, T1) is None
    assert set_evse_status(old, "E2", Status.AVAILABLE, T1) is None
    assert set_evse_status(old, "NOPE", Status.AVAILABLE, T1) is None


def test_last_updated_never_goes_back_when_the_clock_is_behind() -> None:
    old = location(evse("E1"))
    changed = set_evse_status(old, "E1", Status.CHARGING, T0 - timedelta(hours=1))
    assert changed is not None
    assert changed[0].last_updated == T0


def test_evse_dropped_from_the_middle_keeps_its_place() -> None:
    old = location(evse("E1"), evse("E2"), evse("E3"))
    new = replace_location(old, stamped_now(location(evse("E1"), evse("E3"))), T1)
    assert [(e.uid, e.status) for e in new.evses or []] == [
        ("E1", Status.AVAILABLE),
        ("E2", Status.REMOVED),
        ("E3", Status.AVAILABLE),
    ]
    assert puts_for(old, new) == [PutTarget(target=Target.EVSE, evse_uid="E2")]


def test_reordered_evses_put_the_whole_location() -> None:
    old = location(evse("E1"), evse("E2"))
    new = replace_location(old, stamped_now(location(evse("E2"), evse("E1"))), T1)
    assert puts_for(old, new) == [PutTarget(target=Target.LOCATION)]


def test_ids_keep_their_stored_spelling() -> None:
    old = location(evse("E1"))
    described = stamped_now(location(evse("e1", connector("1")), id="loc1"))
    new = replace_location(old, described, T1)
    assert new == old
