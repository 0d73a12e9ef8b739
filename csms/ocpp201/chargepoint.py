"""The OCPP 2.0.1 connection of one charging station: one thin handler per action
(parse -> service -> build)."""

from __future__ import annotations

import logging
import secrets
from typing import Any

from ocpp.v201.enums import Action

from csms.domain.commands import ChargerCommand, CommandAnswer
from csms.domain.model import OcppVersion, RegistrationStatus
from csms.domain.outcomes import CallAnswered
from csms.domain.requests import NotificationReport
from csms.ocpp201 import commands
from csms.ocpp201 import inbound as parse
from csms.ocpp201 import outbound as build
from csms.rpc.connection import RpcConnection, on
from csms.services.context import Services

log = logging.getLogger(__name__)

Payload = dict[str, Any]


class ChargePoint201(RpcConnection):
    version = OcppVersion.V201
    actions = frozenset(action.value for action in Action)

    def build_command(self, command: ChargerCommand) -> tuple[str, Payload]:
        return commands.build_command(command)

    def parse_answer(self, command: ChargerCommand, payload: Payload) -> CommandAnswer:
        return commands.parse_answer(command, payload)

    def __init__(self, charger_id: str, websocket: Any, *, services: Services, **kwargs: Any):
        super().__init__(charger_id, websocket, **kwargs)
        self._s = services
        self._clock = services.clock
        self._inventory_request: int | None = None

    @on(Action.boot_notification)
    async def on_boot_notification(self, p: Payload) -> Payload:
        decision = await self._s.chargers.handle_boot(parse.parse_boot(self.charger_id, p))
        self.registration = decision.status
        if decision.status is RegistrationStatus.ACCEPTED and self._s.base_report:
            self.after_reply(self.request_inventory)
        return build.build_boot(decision)

    async def request_inventory(self) -> None:
        """Ask for the base report; the station answers with NotifyReport pages."""
        assert self._s.base_report is not None
        self._inventory_request = secrets.randbelow(2**31)
        request = build.build_get_base_report(self._inventory_request, self._s.base_report)
        outcome = await self.call("GetBaseReport", request)
        if not isinstance(outcome, CallAnswered) or outcome.payload.get("status") != "Accepted":
            log.warning("%s did not accept GetBaseReport: %s", self.charger_id, outcome)

    @on(Action.heartbeat)
    async def on_heartbeat(self, p: Payload) -> Payload:
        return build.build_heartbeat(await self._s.chargers.handle_heartbeat(self.charger_id))

    @on(Action.status_notification)
    async def on_status_notification(self, p: Payload) -> Payload:
        await self._s.chargers.handle_status(parse.parse_status(self.charger_id, p))
        return {}

    @on(Action.authorize)
    async def on_authorize(self, p: Payload) -> Payload:
        request = parse.parse_authorize(self.charger_id, p)
        return build.build_authorize(await self._s.transactions.handle_authorize(request))

    @on(Action.transaction_event)
    async def on_transaction_event(self, p: Payload) -> Payload:
        report = parse.parse_transaction_event(self.charger_id, p)
        decision = await self._s.transactions.handle_transaction_event(report)
        return build.build_transaction_event(decision)

    @on(Action.meter_values)
    async def on_meter_values(self, p: Payload) -> Payload:
        await self._s.transactions.handle_meter_values(parse.parse_meter_values(self.charger_id, p))
        return {}

    @on(Action.notify_report)
    async def on_notify_report(self, p: Payload) -> Payload:
        """Pages of the base report we asked for replace the inventory; other reports (asked
        by an operator tool, or by an earlier connection) leave it alone."""
        if p["requestId"] != self._inventory_request:
            log.info(
                "%s: NotifyReport %s is not our inventory request", self.charger_id, p["requestId"]
            )
            return {}
        await self._s.chargers.handle_inventory_page(parse.parse_report_page(self.charger_id, p))
        return {}

    @on(Action.notify_event)
    async def on_notify_event(self, p: Payload) -> Payload:
        for event in p["eventData"]:
            component = event["component"]["name"]
            variable = event["variable"]["name"]
            await self._notify("event", f"{component}.{variable}={event['actualValue']}")
        return {}

    @on(Action.security_event_notification)
    async def on_security_event_notification(self, p: Payload) -> Payload:
        await self._notify("security", p["type"])
        return {}

    @on(Action.firmware_status_notification)
    async def on_firmware_status_notification(self, p: Payload) -> Payload:
        await self._notify("firmware", p["status"], p.get("requestId"))
        return {}

    @on(Action.log_status_notification)
    async def on_log_status_notification(self, p: Payload) -> Payload:
        await self._notify("log", p["status"], p.get("requestId"))
        return {}

    @on(Action.reservation_status_update)
    async def on_reservation_status_update(self, p: Payload) -> Payload:
        await self._s.chargers.handle_reservation_status(
            self.charger_id, p["reservationId"], p["reservationUpdateStatus"]
        )
        return {}

    @on(Action.notify_charging_limit)
    async def on_notify_charging_limit(self, p: Payload) -> Payload:
        await self._s.chargers.handle_charging_limit(
            self.charger_id,
            source=p["chargingLimit"]["chargingLimitSource"],
            ocpp_evse_id=p.get("evseId"),
            cleared=False,
        )
        return {}

    @on(Action.cleared_charging_limit)
    async def on_cleared_charging_limit(self, p: Payload) -> Payload:
        await self._s.chargers.handle_charging_limit(
            self.charger_id,
            source=p["chargingLimitSource"],
            ocpp_evse_id=p.get("evseId"),
            cleared=True,
        )
        return {}

    @on(Action.data_transfer)
    async def on_data_transfer(self, p: Payload) -> Payload:
        request = parse.parse_data_transfer(self.charger_id, p)
        return build.build_data_transfer(await self._s.chargers.handle_data_transfer(request))

    async def _notify(self, kind: str, status: str, request_id: int | None = None) -> None:
        await self._s.chargers.handle_notification(
            NotificationReport(
                charger_id=self.charger_id,
                kind=kind,
                status=status[:255],
                reported_at=self._clock(),
                request_id=request_id,
            )
        )
