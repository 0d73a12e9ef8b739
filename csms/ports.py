"""Ports: the interfaces the central system offers to, and needs from, the outside.

The bridge implements ``TokenAuthorizer`` (OCPI tokens) and uses ``ChargerGateway`` (commands);
``csms`` ships a local implementation of the first so that it runs on its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from csms.domain.commands import ChargerCommand, CommandAnswer
from csms.domain.events import RecordedEvent
from csms.domain.model import ChargerFacts
from csms.domain.outcomes import CallOutcome
from csms.domain.requests import AuthorizationDecision, AuthorizationRequest


class TokenAuthorizer(Protocol):
    async def authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        """Decide whether an idTag/idToken may charge. Must answer within the charger's timeout."""
        ...


class ChargerGateway(Protocol):
    def is_connected(self, charger_id: str) -> bool: ...

    async def call(
        self, charger_id: str, action: str, payload: dict[str, Any], *, timeout_s: float | None
    ) -> CallOutcome:
        """Send one OCPP call to a connected charger; every failure is an outcome value."""
        ...


class ChargerCommands(Protocol):
    """Reaches a charger wherever its connection lives (this node today; a multi-node
    deployment routes the command, a plain value, to the node holding the connection)."""

    def is_connected(self, charger_id: str) -> bool: ...

    async def execute(
        self, charger_id: str, command: ChargerCommand, *, timeout_s: float | None = None
    ) -> CommandAnswer:
        """Send one command; every failure (offline, timeout, CallError) is an answer."""
        ...


class ChargerDirectory(Protocol):
    async def charger_facts(self) -> Mapping[str, ChargerFacts]:
        """Every registered charger, by id, with what it reported about itself."""
        ...


class EventFeed(Protocol):
    async def read_after(self, offset: int, limit: int) -> Sequence[RecordedEvent]:
        """Up to ``limit`` events with an offset above ``offset``, in log order."""
        ...

    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (no arguments, must not block) when new events were committed."""
        ...
