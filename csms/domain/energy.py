"""Pure rules for reading energy registers out of meter readings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from csms.domain.model import MeterReading


def to_wh(value: Decimal) -> int:
    """Round a register value in Wh to whole Wh (half up)."""
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def energy_register_wh(readings: Iterable[MeterReading], *, earliest: bool = False) -> int | None:
    """The latest (or ``earliest``) Energy.Active.Import.Register among ``readings`` in Wh.

    Prefers the phase-less reading of the latest sample time; when that sample only carries
    per-phase registers (``L1``, ``L2``, ``L3`` or ``L1-N`` ...), their sum is used.
    Returns ``None`` when no energy register is present.
    """
    by_time: dict[datetime, list[MeterReading]] = {}
    for reading in readings:
        if reading.is_energy_import_register:
            by_time.setdefault(reading.sampled_at, []).append(reading)
    if not by_time:
        return None
    sample = by_time[min(by_time) if earliest else max(by_time)]
    overall = [r.value for r in sample if r.phase is None and r.value is not None]
    if overall:
        return to_wh(overall[-1])
    return to_wh(sum((r.value for r in sample if r.value is not None), Decimal(0)))
