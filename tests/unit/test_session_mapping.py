"""Pure pieces of the session mapping: meter readings to samples, the session timeline, charging
vs parking states, signed data."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from bridge.mapping import sessions as mapping
from bridge.mapping.tariffs import ChargeState
from csms.domain.model import (
    ChargingState,
    ConnectorStatus,
    MeterReading,
    ReadingContext,
    SignedMeterValue,
)

T0 = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def reading(
    measurand: str,
    value: str,
    unit: str,
    *,
    minutes: int = 0,
    phase: str | None = None,
    location: str = "Outlet",
) -> MeterReading:
    return MeterReading(
        sampled_at=T0 + timedelta(minutes=minutes),
        measurand=measurand,
        value=Decimal(value),
        unit=unit,
        phase=phase,
        location=location,
    )


def test_samples_group_by_instant_and_sum_phases() -> None:
    samples = mapping.samples_of(
        [
            reading("Energy.Active.Import.Register", "1000", "Wh"),
            reading("Power.Active.Import", "7400", "W"),
            reading("Current.Import", "10", "A", phase="L1"),
            reading("Current.Import", "11", "A", phase="L2"),
            reading("Current.Import", "12", "A", phase="L3"),
            reading("Energy.Active.Import.Register", "600", "Wh", minutes=5, phase="L1"),
            reading("Energy.Active.Import.Register", "700", "Wh", minutes=5, phase="L2"),
            reading("Energy.Active.Import.Register", "9999", "Wh", minutes=9, location="Inlet"),
            reading("SoC", "55", "Percent", minutes=7),
        ]
    )
    assert samples == [
        mapping.Sample(at=T0, register_wh=1000, power_w=Decimal(7400), current_a=Decimal(33)),
        mapping.Sample(at=T0 + timedelta(minutes=5), register_wh=1300),
    ]


@pytest.mark.parametrize(
    ("status", "state"),
    [
        (ConnectorStatus.CHARGING, ChargeState.CHARGING),
        (ConnectorStatus.SUSPENDED_EVSE, ChargeState.CHARGING),
        (ConnectorStatus.SUSPENDED_EV, ChargeState.PARKING),
        (ConnectorStatus.PREPARING, None),
        (ConnectorStatus.FINISHING, None),
        (ConnectorStatus.AVAILABLE, None),
    ],
)
def test_16_statuses_to_states(status: ConnectorStatus, state: ChargeState | None) -> None:
    assert mapping.state_of_status(status) is state


@pytest.mark.parametrize(
    ("charging", "state"),
    [
        (ChargingState.CHARGING, ChargeState.CHARGING),
        (ChargingState.SUSPENDED_EVSE, ChargeState.CHARGING),
        (ChargingState.SUSPENDED_EV, ChargeState.PARKING),
        (ChargingState.EV_CONNECTED, ChargeState.PARKING),
        (ChargingState.IDLE, ChargeState.PARKING),
    ],
)
def test_201_charging_states(charging: ChargingState, state: ChargeState) -> None:
    assert mapping.state_of_charging_state(charging) is state


def test_usage_round_trips_and_ignores_repeated_states() -> None:
    usage = mapping.Usage()
    assert usage.change_state(T0, ChargeState.CHARGING)
    assert not usage.change_state(T0 + timedelta(minutes=1), ChargeState.CHARGING)
    assert usage.change_state(T0 + timedelta(minutes=30), ChargeState.PARKING)
    usage.add_point(T0 + timedelta(minutes=10), 3000, Decimal("11000.5"), None)
    usage.add_point(T0 + timedelta(minutes=5), 1500, None, Decimal(16))
    usage.signed.append({"nature": "Start", "signed_data": "abc"})
    rows = sorted(usage.take_unstored(), key=lambda point: point[0])  # as read back: by time
    again = mapping.Usage.from_json(usage.to_json(), rows)
    assert again == usage
    assert [at for at, *_ in again.meter] == [T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]
    assert again.energy_wh() == 3000
    assert again.energy_wh(until=T0 + timedelta(minutes=7)) == 1500


def _encoded_at_once(usage: mapping.Usage) -> str:
    """The timeline but its points encoded in one go, as ``to_json`` did before it kept
    encoded entries."""
    data: dict[str, object] = {
        "states": [[at.isoformat(), state.value] for at, state in usage.states],
        "points": len(usage.meter),
        "signed": usage.signed,
    }
    if usage.reservation_expired:
        data["reservation_expired"] = True
    return json.dumps(data, separators=(",", ":"))


def test_usage_text_counts_the_points_stored_apart_and_encodes_signed_values_once() -> None:
    """A running session is stored after every meter value: its text holds the state changes
    and signed values (each encoded once, as added) and only the count of its points, which
    are stored as rows of their own: ``take_unstored`` gives each point once, late ones too."""
    usage = mapping.Usage()
    usage.change_state(T0, ChargeState.CHARGING)
    texts, stored = [], []
    for minute in range(0, 50, 5):
        usage.add_point(T0 + timedelta(minutes=minute), minute * 100, Decimal("7000.5"), None)
        usage.add_signed([{"nature": "Intermediate", "signed_data": f"s-{minute}", "x": "é"}])
        texts.append(usage.to_json())
        stored += usage.take_unstored()
        assert texts[-1] == _encoded_at_once(usage)
    assert len(usage._signed_parts) == len(usage.signed) == 10
    assert stored == usage.meter
    assert usage.take_unstored() == []
    assert "meter" not in json.loads(texts[0])
    assert json.loads(texts[-1])["points"] == 10
    # A late point goes in time order (after a point of the same time), as its row will be
    # read back (by time, then as appended).
    usage.add_point(T0 + timedelta(minutes=12), 1250, None, Decimal(16))
    usage.add_point(T0 + timedelta(minutes=10), 1000, None, Decimal(32))
    assert [at.minute for at, *_ in usage.meter][:5] == [0, 5, 10, 10, 12]
    assert usage.meter[3][3] == Decimal(32)  # after the earlier point of 10 minutes
    late = usage.take_unstored()
    assert [at.minute for at, *_ in late] == [12, 10]
    rows = sorted(stored + late, key=lambda point: point[0])  # stable: as appended
    again = mapping.Usage.from_json(usage.to_json(), rows)
    assert again == usage
    # Lists changed directly are encoded again.
    usage.signed.append({"nature": "End", "signed_data": "last"})
    usage.reservation_expired = True
    assert usage.to_json() == _encoded_at_once(usage)


def test_a_timeline_stored_with_its_points_in_its_text_moves_them_to_rows() -> None:
    """Sessions stored before the points had rows of their own hold them in their text
    (``meter``): decoded, they are points not stored yet, so the next store moves them."""
    legacy = json.dumps(
        {
            "states": [[T0.isoformat(), "charging"]],
            "meter": [
                [T0.isoformat(), 0, "7000.5", None],
                [(T0 + timedelta(minutes=5)).isoformat(), 500, None, "16"],
            ],
            "signed": [],
        }
    )
    usage = mapping.Usage.from_json(legacy)
    assert usage.meter == [
        (T0, 0, Decimal("7000.5"), None),
        (T0 + timedelta(minutes=5), 500, None, Decimal(16)),
    ]
    assert mapping.Usage.stored_points(legacy) == 0  # nothing to read from the rows
    assert usage.take_unstored() == usage.meter
    assert json.loads(usage.to_json())["points"] == 2


def test_a_session_that_starts_later_counts_energy_from_its_start() -> None:
    """2.0.1: the cable came first, the token 5 minutes later (the session's start)."""
    usage = mapping.Usage()
    usage.change_state(T0, ChargeState.CHARGING)
    usage.add_point(T0 + timedelta(minutes=5), 500, None, None)
    usage.add_point(T0 + timedelta(minutes=15), 2500, None, None)
    start = T0 + timedelta(minutes=5)
    engine = usage.engine_usage(start, T0 + timedelta(minutes=20))
    assert [(p.at, p.energy_wh) for p in engine.meter] == [
        (start, 0),
        (T0 + timedelta(minutes=15), 2000),
    ]
    assert engine.states[0].at == start
    assert usage.energy_since(start) == 2000


def test_signed_values_become_signed_data() -> None:
    signed = mapping.signed_values_of(
        [
            MeterReading(
                sampled_at=T0,
                measurand="Energy.Active.Import.Register",
                value=Decimal(1000),
                unit="Wh",
                context=ReadingContext.TRANSACTION_BEGIN,
                signed=SignedMeterValue(data="U0lHTkVE", encoding_method="OCMF", public_key="KEY"),
            ),
            MeterReading(
                sampled_at=T0 + timedelta(hours=1),
                measurand="Energy.Active.Import.Register",
                value=None,
                unit="Wh",
                context=ReadingContext.TRANSACTION_END,
                signed=SignedMeterValue(data="RU5E"),
            ),
        ]
    )
    data = mapping.signed_data(signed)
    assert data is not None
    assert (data.encoding_method, data.public_key) == ("OCMF", "KEY")
    assert [(v.nature, v.plain_data, v.signed_data) for v in data.signed_values] == [
        ("Start", "1000", "U0lHTkVE"),
        ("End", "RU5E", "RU5E"),
    ]
    assert mapping.signed_data([]) is None


def test_noisy_negative_power_and_current_count_as_zero() -> None:
    """The tariff engine refuses negative power: a charger's noise must not stop the sessions
    projection."""
    (sample,) = mapping.samples_of(
        [
            reading("Energy.Active.Import.Register", "1000", "Wh"),
            reading("Power.Active.Import", "-3", "W"),
            reading("Current.Import", "-0.1", "A"),
        ]
    )
    assert (sample.power_w, sample.current_a) == (Decimal(0), Decimal(0))


# --- progress PATCH windows ------------------------------------------------------------------

INTERVAL = timedelta(seconds=30)


def patch_times(session_id: str, pushed_at: datetime, seconds: int) -> list[datetime]:
    """When a session PUT at ``pushed_at`` and metered every second is PATCHed."""
    last, sent = pushed_at, []
    for second in range(1, seconds + 1):
        at = pushed_at + timedelta(seconds=second)
        if mapping.patch_due(session_id, last, at, INTERVAL):
            last = at
            sent.append(at)
    return sent


def test_a_session_is_patched_once_per_window_of_the_interval() -> None:
    sent = patch_times("9c4f0d1e-5b7a-5c2e-8f31-0a6d2b9e4c17", T0, 300)
    assert 9 <= len(sent) <= 11
    assert sent[0] - T0 <= INTERVAL  # the first PATCH within one interval of the PUT
    gaps = {later - earlier for earlier, later in itertools.pairwise(sent)}
    assert gaps == {INTERVAL}  # then one every interval, metered every second


def test_sessions_started_together_are_patched_spread_over_the_interval() -> None:
    firsts = [
        patch_times(f"session-{n}", T0, 31)[0] - T0 for n in range(1000)
    ]  # every one PUT at T0
    per_3_seconds = [0] * 11
    for first in firsts:
        per_3_seconds[int(first.total_seconds()) // 3] += 1
    assert sum(per_3_seconds) == 1000
    # Even: about 100 per tenth of the interval, where a common phase would put all in one.
    assert max(per_3_seconds[:10]) < 150
    assert min(per_3_seconds[:10]) > 50


def test_no_patch_for_a_value_older_than_the_last_push_and_always_one_without_interval() -> None:
    session_id = "session-1"
    assert not mapping.patch_due(session_id, T0, T0 - timedelta(minutes=5), INTERVAL)
    assert not mapping.patch_due(session_id, T0, T0, INTERVAL)
    assert mapping.patch_due(session_id, T0, T0 + INTERVAL, INTERVAL)  # a window passed
    assert mapping.patch_due(session_id, T0, T0, timedelta(0))
    # The phase is the session's own, the same in every process (not Python's hash).
    phases = {patch_times(session_id, T0, 31)[0] for _ in range(3)}
    assert len(phases) == 1
