"""Pure rules for changing a Location: ``last_updated`` bumps only on real changes, EVSEs are
never deleted (a removed one stays with status ``REMOVED``), and the smallest set of PUTs that
brings a receiver's copy up to date (reference 1.7 and 3.1)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from bridge.ocpi.locations import EVSE, Connector, Location, Status

_NOT_COMPARED = {"last_updated"}


def _content(model: EVSE | Connector | Location, *, without: set[str] | None = None) -> Any:
    exclude = _NOT_COMPARED | (without or set())
    return model.model_dump(mode="json", exclude=exclude, exclude_none=True)


def _later(now: datetime, *previous: datetime) -> datetime:
    """``now``, or the latest previous ``last_updated`` if the clock is behind it: an object's
    ``last_updated`` never goes back."""
    return max((now, *previous))


def _same_id(a: str, b: str) -> bool:
    return a.upper() == b.upper()


def find_evse(location: Location, evse_uid: str) -> EVSE | None:
    return next((e for e in location.evses or () if _same_id(e.uid, evse_uid)), None)


def find_connector(evse: EVSE, connector_id: str) -> Connector | None:
    return next((c for c in evse.connectors if _same_id(c.id, connector_id)), None)


# --- replacing a Location by a new description ------------------------------------------------


def _stamp_connector(old: Connector | None, new: Connector, now: datetime) -> Connector:
    if old is not None:
        new = new.model_copy(update={"id": old.id})  # ids never change, not even their case
    if old is not None and _content(old) == _content(new):
        return new.model_copy(update={"last_updated": old.last_updated})
    stamp = _later(now, old.last_updated) if old is not None else now
    return new.model_copy(update={"last_updated": stamp})


def _stamp_evse(old: EVSE | None, new: EVSE, now: datetime) -> EVSE:
    if old is not None:
        new = new.model_copy(update={"uid": old.uid})
    connectors = [
        _stamp_connector(find_connector(old, c.id) if old else None, c, now) for c in new.connectors
    ]
    if old is None:
        return new.model_copy(update={"connectors": connectors, "last_updated": now})
    changed = (
        _content(old, without={"connectors"}) != _content(new, without={"connectors"})
        or [c.id for c in old.connectors] != [c.id for c in connectors]
        or any(c.last_updated > old.last_updated for c in connectors)
    )
    stamp = _later(now, old.last_updated) if changed else old.last_updated
    return new.model_copy(update={"connectors": connectors, "last_updated": stamp})


def _removed(evse: EVSE, now: datetime) -> EVSE:
    if evse.status is Status.REMOVED:
        return evse
    return evse.model_copy(
        update={"status": Status.REMOVED, "last_updated": _later(now, evse.last_updated)}
    )


def replace_location(old: Location | None, new: Location, now: datetime) -> Location:
    """``new`` with the ``last_updated`` of every unchanged object carried over from ``old``
    and ``now`` on changed ones (a child's change bumps its parents). EVSEs of ``old`` that
    ``new`` lacks are kept, with status ``REMOVED``."""
    if old is None:
        return new
    evses = [_stamp_evse(find_evse(old, e.uid), e, now) for e in new.evses or ()]
    kept = {e.uid.upper() for e in evses}
    for index, evse in enumerate(old.evses or ()):
        if evse.uid.upper() not in kept:  # stays where it was, as REMOVED
            evses.insert(min(index, len(evses)), _removed(evse, now))
    draft = new.model_copy(update={"id": old.id, "evses": evses or None})
    changed = (
        _content(old, without={"evses"}) != _content(draft, without={"evses"})
        or [e.uid for e in old.evses or ()] != [e.uid for e in evses]
        or any(e.last_updated > old.last_updated for e in evses)
    )
    stamp = _later(now, old.last_updated) if changed else old.last_updated
    return draft.model_copy(update={"last_updated": stamp})


def remove_location(location: Location, now: datetime) -> Location:
    """The Location with every EVSE ``REMOVED`` (Locations and EVSEs are never deleted)."""
    evses = [_removed(e, now) for e in location.evses or ()]
    if all(a is b for a, b in zip(evses, location.evses or (), strict=True)):
        return location
    return location.model_copy(
        update={
            "evses": evses,
            "last_updated": _later(now, location.last_updated, *(e.last_updated for e in evses)),
        }
    )


# --- live status ------------------------------------------------------------------------------


def set_evse_status(
    location: Location, evse_uid: str, status: Status, now: datetime
) -> tuple[Location, EVSE] | None:
    """The Location with the EVSE's new status (EVSE and Location bumped), and the EVSE; ``None``
    when the status is unchanged or the EVSE is unknown or operator-controlled (PLANNED,
    REMOVED)."""
    evse = find_evse(location, evse_uid)
    if evse is None or evse.status is status:
        return None
    if evse.status in (Status.PLANNED, Status.REMOVED):
        return None
    stamp = _later(now, evse.last_updated, location.last_updated)
    updated = evse.model_copy(update={"status": status, "last_updated": stamp})
    evses = [updated if e is evse else e for e in location.evses or ()]
    return location.model_copy(update={"evses": evses, "last_updated": stamp}), updated


# --- what to send ---------------------------------------------------------------------------


class Target(StrEnum):
    LOCATION = "location"
    EVSE = "evse"
    CONNECTOR = "connector"


@dataclass(frozen=True, kw_only=True)
class PutTarget:
    """One object to PUT to receivers: the whole Location, one EVSE or one Connector."""

    target: Target
    evse_uid: str | None = None
    connector_id: str | None = None


def puts_for(old: Location | None, new: Location) -> list[PutTarget]:
    """The PUTs that turn a receiver's copy of ``old`` into ``new`` (both already stamped by
    :func:`replace_location`): the whole Location when it is new or its own fields changed,
    else each changed EVSE (new, or its own fields or connector list changed), else each
    changed Connector. Empty when nothing changed."""
    if old is None or _content(old, without={"evses"}) != _content(new, without={"evses"}):
        return [PutTarget(target=Target.LOCATION)]
    old_uids = [e.uid.upper() for e in old.evses or ()]
    if [e.uid.upper() for e in new.evses or ()][: len(old_uids)] != old_uids:
        # A receiver appends a new EVSE it gets by PUT: any other change of order needs the
        # whole Location for its copy to keep ours.
        return [PutTarget(target=Target.LOCATION)]
    targets: list[PutTarget] = []
    for evse in new.evses or ():
        before = find_evse(old, evse.uid)
        if before is None or (
            _content(before, without={"connectors"}) != _content(evse, without={"connectors"})
            or [c.id for c in before.connectors] != [c.id for c in evse.connectors]
        ):
            targets.append(PutTarget(target=Target.EVSE, evse_uid=evse.uid))
            continue
        for connector in evse.connectors:
            previous = find_connector(before, connector.id)
            if previous is None or _content(previous) != _content(connector):
                targets.append(
                    PutTarget(target=Target.CONNECTOR, evse_uid=evse.uid, connector_id=connector.id)
                )
    return targets
