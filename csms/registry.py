"""Live charger connections on this node; the ``ChargerGateway`` the rest of the system uses
to reach a charger."""

from __future__ import annotations

from typing import Any

from csms.domain.commands import ChargerCommand, CommandAnswer, CommandStatus
from csms.domain.outcomes import CallOutcome, ChargerOffline
from csms.rpc.connection import RpcConnection


class ConnectionRegistry:
    def __init__(self) -> None:
        self._connections: dict[str, RpcConnection] = {}

    def register(self, connection: RpcConnection) -> RpcConnection | None:
        """Make ``connection`` the charger's current one; returns the one it replaces."""
        previous = self._connections.get(connection.charger_id)
        self._connections[connection.charger_id] = connection
        return previous if previous is not connection else None

    def unregister(self, connection: RpcConnection) -> bool:
        """Forget ``connection`` if it is still current; False if a newer one replaced it."""
        if self._connections.get(connection.charger_id) is connection:
            del self._connections[connection.charger_id]
            return True
        return False

    def get(self, charger_id: str) -> RpcConnection | None:
        return self._connections.get(charger_id)

    def is_connected(self, charger_id: str) -> bool:
        return charger_id in self._connections

    def connected_ids(self) -> list[str]:
        return sorted(self._connections)

    async def execute(
        self, charger_id: str, command: ChargerCommand, *, timeout_s: float | None = None
    ) -> CommandAnswer:
        """Send ``command`` to the charger's current connection on this node (``OFFLINE``
        when it has none)."""
        connection = self._connections.get(charger_id)
        if connection is None:
            return CommandAnswer(status=CommandStatus.OFFLINE, detail="charger not connected")
        return await connection.execute(command, timeout_s=timeout_s)

    async def call(
        self,
        charger_id: str,
        action: str,
        payload: dict[str, Any],
        *,
        timeout_s: float | None = None,
    ) -> CallOutcome:
        connection = self._connections.get(charger_id)
        if connection is None:
            return ChargerOffline(charger_id=charger_id)
        return await connection.call(action, payload, timeout_s=timeout_s)
