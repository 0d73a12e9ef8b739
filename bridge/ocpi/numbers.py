"""OCPI ``number`` and ``Price`` (reference section 1.5): money and energy as ``Decimal``.

Values are read from JSON numbers or decimal strings into ``Decimal`` (never through ``float``
arithmetic) and written back as JSON numbers. A JSON number is produced from the ``Decimal``
via ``float`` only at the very last step, which is exact for the at most 4 decimals and the
magnitudes OCPI numbers carry (the shortest ``float`` repr of such a value is its decimal text).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, PlainSerializer, StringConstraints

from bridge.ocpi.models import OcpiModel


def _read_number(value: object) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"not a number: {value!r}") from None
    else:
        raise ValueError("expected a number")
    if not number.is_finite():
        raise ValueError("numbers must be finite")
    return number


def _write_number(value: Decimal) -> int | float:
    if value == value.to_integral_value():
        return int(value)
    return float(value)


OcpiNumber = Annotated[
    Decimal,
    BeforeValidator(_read_number),
    PlainSerializer(_write_number, return_type=int | float, when_used="json"),
]
"""OCPI ``number``: a finite ``Decimal`` in Python, a JSON number on the wire."""


def _non_negative(value: Decimal) -> Decimal:
    if value < 0:
        raise ValueError("must not be negative")
    return value


NonNegativeNumber = Annotated[OcpiNumber, AfterValidator(_non_negative)]


CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""ISO 4217 currency code: three upper-case letters."""


class Price(OcpiModel):
    """``excl_vat`` always; ``incl_vat`` absent when VAT is not known/applicable to the sender.
    Amounts may be negative only in credit CDRs, so no sign rule is enforced here."""

    excl_vat: OcpiNumber
    incl_vat: OcpiNumber | None = None
