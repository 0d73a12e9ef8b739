"""Normalization of measured values: energy in Wh, power in W, reactive in var(h), apparent
power in VA, whatever unit and power-of-ten multiplier the charger used."""

from __future__ import annotations

from decimal import Decimal

_SCALE: dict[str, tuple[str, Decimal]] = {
    "kWh": ("Wh", Decimal(1000)),
    "kW": ("W", Decimal(1000)),
    "kvarh": ("varh", Decimal(1000)),
    "kvar": ("var", Decimal(1000)),
    "kVA": ("VA", Decimal(1000)),
    "Celcius": ("Celsius", Decimal(1)),  # the 1.6 schema's spelling
}


def normalize(value: Decimal, unit: str, multiplier: int = 0) -> tuple[Decimal, str]:
    """``(value, unit)`` in the base unit: ``normalize(Decimal("1.5"), "kWh")`` is 1500 Wh;
    ``multiplier`` is the 2.0.1 ``unitOfMeasure.multiplier`` (a power of ten)."""
    base, factor = _SCALE.get(unit, (unit, Decimal(1)))
    if multiplier:
        factor = factor * Decimal(10) ** multiplier
    return value * factor, base
