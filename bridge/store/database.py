"""The database the OCPI side shares with the central system (one engine, one write lock):
the rest of the bridge reaches it through here, never through ``csms.store``."""

from __future__ import annotations

from csms.store.database import Database, UnitOfWork, Writes, fetch_in
from csms.store.prepared import PreparedSelect

__all__ = ["Database", "PreparedSelect", "UnitOfWork", "Writes", "fetch_in"]
