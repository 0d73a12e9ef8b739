"""Pure tests of the simulators' station state: start and reservation decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from simulators.charger.station import Reservation, StartCheck, StationState, Transaction

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)


def station(units: int = 2) -> StationState:
    return StationState(tuple(range(1, units + 1)))


def test_start_is_refused_on_a_busy_reserved_inoperative_or_unknown_unit() -> None:
    state = station(4)
    state.begin(Transaction(100, 1, "A", NOW))
    state.reserve(Reservation(7, 2, "B", LATER))
    state.statuses[3] = "Faulted"

    assert state.check_start(1, "A") is StartCheck.OCCUPIED
    assert state.check_start(2, "A") is StartCheck.RESERVED
    assert state.check_start(2, "b") is StartCheck.OK  # id tags are case-insensitive
    assert state.check_start(3, "A") is StartCheck.INOPERATIVE
    assert state.check_start(4, "A") is StartCheck.OK
    assert state.check_start(5, "A") is StartCheck.UNKNOWN
    state.statuses[0] = "Unavailable"  # 1.6 connector 0: the whole charge point
    assert state.check_start(4, "A") is StartCheck.INOPERATIVE


def test_free_unit_prefers_the_one_reserved_for_the_tag() -> None:
    state = station(3)
    state.reserve(Reservation(7, 2, "B", LATER))
    state.starting.add(1)

    assert state.free_unit("B") == 2
    assert state.free_unit("A") == 3
    state.statuses[3] = "Unavailable"
    assert state.free_unit("A") is None


def test_reserve_answers_follow_the_unit() -> None:
    state = station(4)
    state.begin(Transaction(100, 1, "A", NOW))
    state.reserve(Reservation(7, 2, "B", LATER))
    state.statuses[3] = "Unavailable"
    state.statuses[4] = "Preparing"

    assert state.check_reserve(1, 8) == "Occupied"
    assert state.check_reserve(2, 8) == "Occupied"
    assert state.check_reserve(2, 7) == "Accepted"  # same id replaces
    assert state.check_reserve(3, 8) == "Unavailable"
    assert state.check_reserve(4, 8) == "Occupied"
    assert state.check_reserve(9, 8) == "Rejected"
    state.statuses[4] = "Faulted"
    assert state.check_reserve(4, 8) == "Faulted"


def test_station_wide_reservations_keep_one_unit_free_each() -> None:
    state = station(2)
    assert state.check_reserve(None, 1) == "Accepted"
    state.reserve(Reservation(1, None, "B", LATER))
    assert state.check_reserve(None, 2) == "Accepted"
    state.reserve(Reservation(2, None, "C", LATER))
    assert state.check_reserve(None, 3) == "Occupied"
    assert state.check_start(1, "A") is StartCheck.RESERVED
    assert state.check_start(1, "B") is StartCheck.OK

    used = state.consume(1, "b")
    assert used is not None
    assert used.reservation_id == 1
    assert list(state.reservations) == [2]


def test_consume_uses_the_units_own_reservation_for_the_tag_only() -> None:
    state = station(2)
    state.reserve(Reservation(7, 1, "B", LATER))

    assert state.consume(1, "A") is None
    assert state.consume(2, "B") is None
    assert state.consume(1, None) is None
    consumed = state.consume(1, "B")
    assert consumed is not None
    assert consumed.reservation_id == 7
    assert state.reservations == {}


def test_rename_and_end_keep_the_transactions_right() -> None:
    state = station(1)
    state.begin(Transaction(-1, 1, "A", NOW))
    state.rename(-1, 100)
    state.stopping.add(100)

    assert state.transaction_on(1) == Transaction(100, 1, "A", NOW)
    assert state.end(100) is not None
    assert state.transactions == {}
    assert state.stopping == set()
    assert state.expired(NOW) == []
