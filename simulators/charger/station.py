"""What a simulated charger knows about its own units: last reported status, running
transactions and reservations, and the answers to CSMS commands that follow from them.

Pure (no I/O; the clock is passed in). A "unit" is a 1.6 connector or a 2.0.1 EVSE; unit 0 is
the whole charger (in 1.6 its status makes every connector unavailable). Id tags / id tokens
are compared case-insensitively, as OCPP requires.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

INOPERATIVE = frozenset({"Unavailable", "Faulted"})
IN_USE = frozenset(
    {"Preparing", "Charging", "SuspendedEV", "SuspendedEVSE", "Finishing", "Occupied"}
)


class StartCheck(StrEnum):
    """Why a (remote) start on a unit is possible or not."""

    OK = "ok"
    UNKNOWN = "unknown"  # no such unit
    OCCUPIED = "occupied"  # a transaction runs (or is being started) there
    RESERVED = "reserved"  # reserved for another id tag
    INOPERATIVE = "inoperative"  # Unavailable or Faulted


@dataclass
class Transaction:
    transaction_id: Any  # int (1.6) or str (2.0.1)
    unit_id: int | None  # None: a 2.0.1 transaction reported without an EVSE
    id_tag: str | None
    started_at: datetime
    meter_start_wh: int = 0
    connector_id: int | None = None  # 2.0.1: the connector of the EVSE, when known
    remote_start_id: int | None = None


@dataclass
class Reservation:
    reservation_id: int
    unit_id: int | None  # None (2.0.1 without evseId): any EVSE of the station
    id_tag: str
    expiry: datetime
    parent_id_tag: str | None = None
    connector_type: str | None = None  # 2.0.1 connectorType asked for

    def for_tag(self, id_tag: str | None) -> bool:
        return id_tag is not None and self.id_tag.upper() == id_tag.upper()

    def to_json(self) -> dict[str, Any]:
        return {
            "reservationId": self.reservation_id,
            "unitId": self.unit_id,
            "idTag": self.id_tag,
            "expiry": self.expiry.isoformat(),
        }


@dataclass
class StationState:
    """Units ``unit_ids`` (1..n); ``statuses`` holds the last status reported per unit."""

    unit_ids: tuple[int, ...]
    statuses: dict[int, str] = field(default_factory=dict)
    transactions: dict[Any, Transaction] = field(default_factory=dict)
    reservations: dict[int, Reservation] = field(default_factory=dict)
    starting: set[int] = field(default_factory=set)  # units with an accepted remote start
    stopping: set[Any] = field(default_factory=set)  # transactions with an accepted remote stop

    # --- status --------------------------------------------------------------------------

    def exists(self, unit_id: int) -> bool:
        return unit_id in self.unit_ids

    def status(self, unit_id: int) -> str:
        """Last status reported for the unit ("Available" if none was reported)."""
        return self.statuses.get(unit_id, "Available")

    def inoperative_status(self, unit_id: int) -> str | None:
        """Faulted or Unavailable when the unit (or the whole charger) is out of order."""
        for status in (self.status(unit_id), self.statuses.get(0, "Available")):
            if status in INOPERATIVE:
                return status
        return None

    # --- transactions --------------------------------------------------------------------

    def transaction_on(self, unit_id: int) -> Transaction | None:
        return next((t for t in self.transactions.values() if t.unit_id == unit_id), None)

    def begin(self, transaction: Transaction) -> None:
        self.transactions[transaction.transaction_id] = transaction
        if transaction.unit_id is not None:
            self.starting.discard(transaction.unit_id)

    def end(self, transaction_id: Any) -> Transaction | None:
        self.stopping.discard(transaction_id)
        return self.transactions.pop(transaction_id, None)

    def rename(self, old_id: Any, new_id: Any) -> None:
        """The CSMS assigned ``new_id`` to a transaction known as ``old_id`` (1.6 offline)."""
        transaction = self.transactions.pop(old_id, None)
        if transaction is not None:
            transaction.transaction_id = new_id
            self.transactions[new_id] = transaction

    # --- starting ------------------------------------------------------------------------

    def check_start(self, unit_id: int, id_tag: str | None) -> StartCheck:
        """May ``id_tag`` start a transaction on ``unit_id`` now?"""
        if not self.exists(unit_id):
            return StartCheck.UNKNOWN
        if self.transaction_on(unit_id) is not None or unit_id in self.starting:
            return StartCheck.OCCUPIED
        reservation = self.reservation_on(unit_id)
        if reservation is not None and not reservation.for_tag(id_tag):
            return StartCheck.RESERVED
        if self.inoperative_status(unit_id) is not None:
            return StartCheck.INOPERATIVE
        if reservation is None and not self._leaves_room_for_station_reservations(unit_id, id_tag):
            return StartCheck.RESERVED
        return StartCheck.OK

    def free_unit(self, id_tag: str | None) -> int | None:
        """First unit ``id_tag`` may start on (one reserved for it first), or None."""
        candidates = [u for u in self.unit_ids if self.check_start(u, id_tag) is StartCheck.OK]
        reserved = [u for u in candidates if self.reservation_on(u) is not None]
        choices = reserved or candidates
        return choices[0] if choices else None

    def _free_for_anyone(self, unit_id: int) -> bool:
        return (
            self.transaction_on(unit_id) is None
            and unit_id not in self.starting
            and self.reservation_on(unit_id) is None
            and self.inoperative_status(unit_id) is None
            and self.status(unit_id) not in IN_USE
        )

    def _leaves_room_for_station_reservations(self, unit_id: int, id_tag: str | None) -> bool:
        """A start on ``unit_id`` must leave one free unit per station-wide reservation of
        other id tags (2.0.1 ReserveNow without evseId)."""
        others = [
            r for r in self.reservations.values() if r.unit_id is None and not r.for_tag(id_tag)
        ]
        if not others:
            return True
        free = [u for u in self.unit_ids if u != unit_id and self._free_for_anyone(u)]
        return len(free) >= len(others)

    # --- reservations --------------------------------------------------------------------

    def reservation_on(self, unit_id: int) -> Reservation | None:
        return next((r for r in self.reservations.values() if r.unit_id == unit_id), None)

    def check_reserve(
        self, unit_id: int | None, reservation_id: int, *, units: tuple[int, ...] | None = None
    ) -> str:
        """OCPP ReserveNow status for a reservation of ``unit_id`` (None: any of ``units``,
        default all): Accepted, Occupied, Faulted, Unavailable or Rejected."""
        if unit_id is None:
            candidates = units if units is not None else self.unit_ids
            answers = [self.check_reserve(u, reservation_id) for u in candidates]
            held = [
                r
                for r in self.reservations.values()
                if r.unit_id is None and r.reservation_id != reservation_id
            ]
            if answers.count("Accepted") > len(held):
                return "Accepted"
            for answer in ("Occupied", "Unavailable", "Faulted"):
                if answer in answers or (answer == "Occupied" and "Accepted" in answers):
                    return answer
            return "Rejected"
        if not self.exists(unit_id):
            return "Rejected"
        inoperative = self.inoperative_status(unit_id)
        if inoperative is not None:
            return inoperative
        holder = self.reservation_on(unit_id)
        busy = self.transaction_on(unit_id) is not None or unit_id in self.starting
        if busy or (holder is not None and holder.reservation_id != reservation_id):
            return "Occupied"
        if holder is None and self.status(unit_id) in IN_USE:
            return "Occupied"
        return "Accepted"

    def reserve(self, reservation: Reservation) -> Reservation | None:
        """Store ``reservation``; returns the reservation with the same id it replaces."""
        replaced = self.reservations.pop(reservation.reservation_id, None)
        self.reservations[reservation.reservation_id] = reservation
        return replaced

    def cancel(self, reservation_id: int) -> Reservation | None:
        return self.reservations.pop(reservation_id, None)

    def consume(self, unit_id: int | None, id_tag: str | None) -> Reservation | None:
        """Remove and return the reservation a start by ``id_tag`` on ``unit_id`` uses: the
        unit's own reservation for that tag, else a station-wide one for that tag."""
        if id_tag is None:
            return None
        own = self.reservation_on(unit_id) if unit_id is not None else None
        if own is not None and own.for_tag(id_tag):
            return self.reservations.pop(own.reservation_id)
        station_wide = next(
            (r for r in self.reservations.values() if r.unit_id is None and r.for_tag(id_tag)),
            None,
        )
        if station_wide is not None:
            return self.reservations.pop(station_wide.reservation_id)
        return None

    def expired(self, now: datetime) -> list[Reservation]:
        """Reservations whose expiry is not after ``now`` (not removed)."""
        return [r for r in self.reservations.values() if r.expiry <= now]
