"""The operator's site file (TOML): chargers and local tokens to create at start-up.

```toml
[[chargers]]
id = "CP-1"
password = "..."        # security profile 1; omit and set allow_no_auth = true for profile 0
boot_status = "Accepted"

[[tokens]]
id_tag = "DEMO-TAG-01"
status = "Accepted"
```
``[[locations]]`` entries are kept raw in ``Site.locations``: the OCPI side reads them with
``bridge.inventory.parse_locations`` once the file's chargers are registered (a location names
its chargers). ``[[tariffs]]`` entries likewise (``bridge.tariffs.parse_tariffs``). Any other
top-level key is refused, so a misspelt section is not silently ignored.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class SiteFileError(ValueError):
    pass


@dataclass(frozen=True, kw_only=True)
class ChargerEntry:
    charger_id: str
    password: str | None = None
    allow_no_auth: bool = False
    boot_status: str = "Accepted"


@dataclass(frozen=True, kw_only=True)
class TokenEntry:
    id_tag: str
    status: str = "Accepted"
    parent_id_tag: str | None = None


@dataclass(frozen=True, kw_only=True)
class Site:
    chargers: tuple[ChargerEntry, ...] = field(default=())
    tokens: tuple[TokenEntry, ...] = field(default=())
    locations: tuple[dict[str, Any], ...] = field(default=())
    """The raw ``[[locations]]`` tables, for ``bridge.inventory.parse_locations``."""
    tariffs: tuple[dict[str, Any], ...] = field(default=())
    """The raw ``[[tariffs]]`` tables, for ``bridge.tariffs.parse_tariffs``."""
    source: str = ""
    """Where the site came from (the file name), to prefix messages about it."""


_BOOT = {"Accepted", "Pending", "Rejected"}
_TOKEN = {"Accepted", "Blocked", "Expired", "Invalid"}
_SECTIONS = ("chargers", "tokens", "locations", "tariffs")


def load_site(path: Path) -> Site:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SiteFileError(f"{path}: {exc}") from exc
    return parse_site(data, str(path))


def parse_site(data: dict[str, Any], source: str) -> Site:
    unknown = [key for key in data if key not in _SECTIONS]
    if unknown:
        names = ", ".join(repr(key) for key in unknown)
        raise SiteFileError(
            f"{source}: unknown top-level key {names} (expected {', '.join(_SECTIONS)})"
        )
    chargers = []
    seen: set[str] = set()
    for i, raw in enumerate(data.get("chargers", [])):
        where = f"{source}: chargers[{i}]"
        charger_id = _string(raw, "id", where)
        if charger_id in seen:
            raise SiteFileError(f"{where}.id: duplicate charger id {charger_id!r}")
        seen.add(charger_id)
        boot_status = raw.get("boot_status", "Accepted")
        if boot_status not in _BOOT:
            raise SiteFileError(
                f"{where}.boot_status: {boot_status!r} is not one of {sorted(_BOOT)}"
            )
        password = raw.get("password")
        if password is not None and not (isinstance(password, str) and 16 <= len(password) <= 40):
            raise SiteFileError(f"{where}.password: 16 to 40 characters (OCPP security profile 1)")
        chargers.append(
            ChargerEntry(
                charger_id=charger_id,
                password=password,
                allow_no_auth=bool(raw.get("allow_no_auth", False)),
                boot_status=boot_status,
            )
        )
    tokens = []
    for i, raw in enumerate(data.get("tokens", [])):
        where = f"{source}: tokens[{i}]"
        status = raw.get("status", "Accepted")
        if status not in _TOKEN:
            raise SiteFileError(f"{where}.status: {status!r} is not one of {sorted(_TOKEN)}")
        tokens.append(
            TokenEntry(
                id_tag=_string(raw, "id_tag", where, max_length=20),
                status=status,
                parent_id_tag=raw.get("parent_id_tag"),
            )
        )
    locations = data.get("locations", [])
    if not isinstance(locations, list) or not all(isinstance(raw, dict) for raw in locations):
        raise SiteFileError(f"{source}: locations: expected an array of tables ([[locations]])")
    tariffs = data.get("tariffs", [])
    if not isinstance(tariffs, list) or not all(isinstance(raw, dict) for raw in tariffs):
        raise SiteFileError(f"{source}: tariffs: expected an array of tables ([[tariffs]])")
    return Site(
        chargers=tuple(chargers),
        tokens=tuple(tokens),
        locations=tuple(locations),
        tariffs=tuple(tariffs),
        source=source,
    )


def _string(raw: dict[str, Any], key: str, where: str, max_length: int = 48) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value:
        raise SiteFileError(f"{where}.{key}: required string")
    if len(value) > max_length:
        raise SiteFileError(f"{where}.{key}: at most {max_length} characters")
    return value
