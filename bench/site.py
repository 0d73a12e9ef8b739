"""Site files (TOML) for the bridge under test: chargers, tokens, Locations and a tariff."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

CONNECTOR = (
    '{ standard = "IEC_62196_T2", format = "SOCKET", power_type = "AC_3_PHASE", '
    "max_voltage = 230, max_amperage = 32%s }"
)

# A tariff that uses every OCPI dimension: FLAT, ENERGY, TIME and PARKING_TIME.
TARIFF_ID = "BENCH-ALL"
TARIFF = f"""
[[tariffs]]
id = "{TARIFF_ID}"
currency = "EUR"
  [[tariffs.elements]]
    [[tariffs.elements.price_components]]
    type = "FLAT"
    price = 0.50
    vat = 21.0
    step_size = 1
  [[tariffs.elements]]
    [[tariffs.elements.price_components]]
    type = "ENERGY"
    price = 0.30
    vat = 21.0
    step_size = 1
    [[tariffs.elements.price_components]]
    type = "TIME"
    price = 1.20
    vat = 21.0
    step_size = 60
  [[tariffs.elements]]
    [[tariffs.elements.price_components]]
    type = "PARKING_TIME"
    price = 5.00
    vat = 21.0
    step_size = 300
"""


@dataclass(frozen=True, kw_only=True)
class SiteSpec:
    """What to put in the site file."""

    chargers: Sequence[str]
    tokens: Sequence[str] = ()
    locations: int = 0  # one EVSE each; the first len(chargers) bound, the others PLANNED
    tariff: bool = False


def evse_uid(index: int) -> str:
    """OCPI EVSE uid of the ``index``-th Location (bound to charger ``index`` if any)."""
    return f"BENCH-EVSE-{index:05d}"


def location_id(index: int) -> str:
    """OCPI Location id of the ``index``-th Location."""
    return f"BENCH-LOC-{index:05d}"


def site_toml(spec: SiteSpec) -> str:
    """The TOML text: every charger without auth (security profile 0, trusted network)."""
    lines: list[str] = []
    for charger in spec.chargers:
        lines += ["[[chargers]]", f'id = "{charger}"', "allow_no_auth = true", ""]
    for token in spec.tokens:
        lines += ["[[tokens]]", f'id_tag = "{token}"', ""]
    tariff = f', tariff_ids = ["{TARIFF_ID}"]' if spec.tariff else ""
    for index in range(spec.locations):
        lines += [
            "[[locations]]",
            f'id = "{location_id(index)}"',
            f'name = "Bench site {index}"',
            f'address = "Benchstraat {index + 1}"',
            'city = "Amsterdam"',
            'postal_code = "1012 AB"',
            'country = "NLD"',
            f'coordinates = {{ latitude = "52.{index:05d}", longitude = "4.90030" }}',
            'time_zone = "Europe/Amsterdam"',
            "",
            "  [[locations.evses]]",
            f'  uid = "{evse_uid(index)}"',
            f'  evse_id = "NL*CPO*E{index:05d}*1"',
            f"  connector = {CONNECTOR % tariff}",
        ]
        if index < len(spec.chargers):
            lines += [f'  charger = "{spec.chargers[index]}"', "  ocpp_evse_id = 1"]
        else:
            lines.append('  status = "PLANNED"')
        lines += ["    [[locations.evses.connectors]]", '    id = "1"', ""]
    if spec.tariff:
        lines.append(TARIFF)
    return "\n".join(lines) + "\n"
