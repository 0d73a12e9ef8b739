"""Errors of the central system.

    CsmsError
    ├── UnknownCharger          a charger id that is not registered
    ├── ChargerAlreadyExists    registering an id twice
    └── InvalidChargerId        an id OCPP does not allow (empty, too long, bad characters)

Expected outcomes (a rejected token, a charger offline) are values, not exceptions.
"""

from __future__ import annotations


class CsmsError(Exception):
    pass


class UnknownCharger(CsmsError):
    def __init__(self, charger_id: str) -> None:
        super().__init__(f"unknown charger {charger_id!r}")
        self.charger_id = charger_id


class ChargerAlreadyExists(CsmsError):
    def __init__(self, charger_id: str) -> None:
        super().__init__(f"charger {charger_id!r} already exists")
        self.charger_id = charger_id


class InvalidChargerId(CsmsError):
    pass
