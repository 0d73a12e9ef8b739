"""The services a connection needs, wired once by the composition root."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from csms.clock import utc_now
from csms.services.chargers import ChargerService
from csms.services.transactions import TransactionService


@dataclass(frozen=True, kw_only=True)
class Services:
    chargers: ChargerService
    transactions: TransactionService
    clock: Callable[[], datetime] = utc_now
    base_report: str | None = "FullInventory"
    """Report a 2.0.1 station is asked for after an accepted boot; ``None`` asks nothing."""
    connector_count_query: bool = True
    """Ask a 1.6 charger for ``NumberOfConnectors`` after an accepted boot (its inventory)."""
