"""The OCPP 1.6J connection of one charger: one thin handler per action
(parse -> service -> build)."""

from __future__ import annotations

import logging
from typing import Any

from ocpp.v16.enums import Action

from csms.domain.commands import ChargerCommand, CommandAnswer
from csms.domain.model import OcppVersion, RegistrationStatus
from csms.domain.outcomes import CallAnswered
from csms.ocpp16 import commands
from csms.ocpp16 import inbound as parse
from csms.ocpp16 import outbound as build
from csms.rpc.connection import RpcConnection, on
from csms.services.context import Services

log = logging.getLogger(__name__)

Payload = dict[str, Any]


class ChargePoint16(RpcConnection):
    version = OcppVersion.V16
    actions = frozenset(action.value for action in Action)

    def build_command(self, command: ChargerCommand) -> tuple[str, Payload]:
        return commands.build_command(command)

    def parse_answer(self, command: ChargerCommand, payload: Payload) -> CommandAnswer:
        return commands.parse_answer(command, payload)

    def __init__(self, charger_id: str, websocket: Any, *, services: Services, **kwargs: Any):
        super().__init__(charger_id, websocket, **kwargs)
        self._s = services
        self._clock = services.clock

    @on(Action.boot_notification)
    async def on_boot_notification(self, p: Payload) -> Payload:
        decision = await self._s.chargers.handle_boot(parse.parse_boot(self.charger_id, p))
        self.registration = decision.status
        if decision.status is RegistrationStatus.ACCEPTED and self._s.connector_count_query:
            self.after_reply(self.query_connector_count)
        return build.build_boot(decision)

    async def query_connector_count(self) -> None:
        """Ask for ``NumberOfConnectors``, the only inventory a 1.6 charger reports; an answer
        we cannot use leaves the stored inventory as it was."""
        request = build.build_get_configuration([parse.NUMBER_OF_CONNECTORS])
        outcome = await self.call("GetConfiguration", request)
        if not isinstance(outcome, CallAnswered):
            log.warning("%s: GetConfiguration %s failed: %s", self.charger_id, request, outcome)
            return
        match parse.parse_connector_count(outcome.payload):
            case int() as count:
                await self._s.chargers.handle_connector_count(self.charger_id, count)
            case parse.Unusable(reason=reason):
                log.warning("%s: GetConfiguration answer unusable: %s", self.charger_id, reason)

    @on(Action.heartbeat)
    async def on_heartbeat(self, p: Payload) -> Payload:
        return build.build_heartbeat(await self._s.chargers.handle_heartbeat(self.charger_id))

    @on(Action.status_notification)
    async def on_status_notification(self, p: Payload) -> Payload:
        await self._s.chargers.handle_status(parse.parse_status(self.charger_id, p, self._clock))
        return {}

    @on(Action.authorize)
    async def on_authorize(self, p: Payload) -> Payload:
        request = parse.parse_authorize(self.charger_id, p)
        return build.build_authorize(await self._s.transactions.handle_authorize(request))

    @on(Action.start_transaction)
    async def on_start_transaction(self, p: Payload) -> Payload:
        request = parse.parse_start_transaction(self.charger_id, p, self._clock)
        return build.build_start_transaction(await self._s.transactions.handle_start(request))

    @on(Action.meter_values)
    async def on_meter_values(self, p: Payload) -> Payload:
        report = parse.parse_meter_values(self.charger_id, p, self._clock)
        await self._s.transactions.handle_meter_values(report)
        return {}

    @on(Action.stop_transaction)
    async def on_stop_transaction(self, p: Payload) -> Payload:
        request = parse.parse_stop_transaction(self.charger_id, p, self._clock)
        return build.build_stop_transaction(await self._s.transactions.handle_stop(request))

    @on(Action.data_transfer)
    async def on_data_transfer(self, p: Payload) -> Payload:
        request = parse.parse_data_transfer(self.charger_id, p)
        return build.build_data_transfer(await self._s.chargers.handle_data_transfer(request))

    @on(Action.diagnostics_status_notification)
    async def on_diagnostics_status_notification(self, p: Payload) -> Payload:
        report = parse.parse_notification(self.charger_id, "diagnostics", p, self._clock)
        await self._s.chargers.handle_notification(report)
        return {}

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(self, p: Payload) -> Payload:
        report = parse.parse_notification(self.charger_id, "firmware", p, self._clock)
        await self._s.chargers.handle_notification(report)
        return {}
