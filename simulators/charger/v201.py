"""OCPP 2.0.1 charging station simulator built on the client side of the ``ocpp`` library.

Same conventions as the 1.6 simulator: every station -> CSMS method returns the *raw camelCase
payload* of the CallResult and raises ``CallErrorReceived`` on a CallError; payload arguments
that are OCPP structures (meter values, event data, schedules) are raw camelCase dicts. Other
``OCPPError``s (e.g. a payload failing the 2.0.1 schema) propagate unchanged.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ocpp.v201 import ChargePoint, call

from simulators.charger.common import CallErrorReceived, format_timestamp, utc_now
from simulators.charger.core import SimulatorCore
from simulators.charger.v201_handlers import CsmsCallHandlers201
from simulators.charger.v201_model import (
    HEARTBEAT_INTERVAL,
    EvseSpec,
    SimulatorConfig201,
    default_variables,
    paginate,
    report_data,
)

__all__ = ["CallErrorReceived", "ChargerSimulator201", "EvseSpec", "SimulatorConfig201"]


class ChargerSimulator201(CsmsCallHandlers201, SimulatorCore, ChargePoint):  # type: ignore[misc]
    task_prefix = "ocpp201"
    config: SimulatorConfig201

    def __init__(self, config: SimulatorConfig201) -> None:
        super().__init__(config)
        self.variables = default_variables(config)
        self.reports_sent: list[dict[str, Any]] = []  # NotifyReport payloads, as sent
        self.active_transactions: dict[str, int | None] = {}  # transaction id -> EVSE id
        self.seq_nos: dict[str, int] = {}  # transaction id -> next seqNo

    # ------------------------------------------------------------------ station -> CSMS

    async def boot(self, reason: str = "PowerUp") -> dict[str, Any]:
        station = {"model": self.config.model, "vendorName": self.config.vendor}
        if self.config.serial_number is not None:
            station["serialNumber"] = self.config.serial_number
        if self.config.firmware_version is not None:
            station["firmwareVersion"] = self.config.firmware_version
        response = await self._call(call.BootNotification(charging_station=station, reason=reason))
        if response.get("status") == "Accepted" and "interval" in response:
            self.variables[HEARTBEAT_INTERVAL] = str(response["interval"])
        return response

    async def heartbeat(self) -> dict[str, Any]:
        return await self._call(call.Heartbeat())

    async def status(
        self, evse_id: int, connector_id: int, status: str, *, timestamp: datetime | None = None
    ) -> dict[str, Any]:
        return await self._call(
            call.StatusNotification(
                timestamp=format_timestamp(timestamp or utc_now()),
                connector_status=status,
                evse_id=evse_id,
                connector_id=connector_id,
            )
        )

    async def authorize(self, id_token: str, token_type: str = "ISO14443") -> dict[str, Any]:
        return await self._call(call.Authorize(id_token={"idToken": id_token, "type": token_type}))

    def next_seq_no(self, transaction_id: str) -> int:
        """seqNo the next ``transaction_event`` of ``transaction_id`` gets by default."""
        return self.seq_nos.get(transaction_id, 0)

    async def transaction_event(
        self,
        event_type: str,
        transaction_id: str,
        trigger_reason: str,
        *,
        seq_no: int | None = None,
        timestamp: datetime | None = None,
        evse: tuple[int, int | None] | None = None,
        id_token: tuple[str, str] | None = None,
        charging_state: str | None = None,
        stopped_reason: str | None = None,
        remote_start_id: int | None = None,
        time_spent_charging: int | None = None,
        meter_value: list[dict[str, Any]] | None = None,
        offline: bool | None = None,
        reservation_id: int | None = None,
        number_of_phases_used: int | None = None,
    ) -> dict[str, Any]:
        """Send (or queue, while offline: then ``offline`` defaults to true) a TransactionEvent.

        ``evse`` is ``(evse_id, connector_id or None)``, ``id_token`` is ``(value, type)``.
        """
        if seq_no is None:
            seq_no = self.next_seq_no(transaction_id)
        self.seq_nos[transaction_id] = max(self.next_seq_no(transaction_id), seq_no + 1)
        info: dict[str, Any] = {"transactionId": transaction_id}
        optional_info = {
            "chargingState": charging_state,
            "timeSpentCharging": time_spent_charging,
            "stoppedReason": stopped_reason,
            "remoteStartId": remote_start_id,
        }
        info.update({key: value for key, value in optional_info.items() if value is not None})
        if self._offline and offline is None:
            offline = True
        self._track_transaction(event_type, transaction_id, evse)
        payload = call.TransactionEvent(
            event_type=event_type,
            timestamp=format_timestamp(timestamp or utc_now()),
            trigger_reason=trigger_reason,
            seq_no=seq_no,
            transaction_info=info,
            meter_value=meter_value,
            offline=offline,
            number_of_phases_used=number_of_phases_used,
            reservation_id=reservation_id,
            evse=None if evse is None else _evse(*evse),
            id_token=None if id_token is None else {"idToken": id_token[0], "type": id_token[1]},
        )
        return await self._call_or_queue(payload)

    async def meter_values(self, evse_id: int, meter_value: list[dict[str, Any]]) -> dict[str, Any]:
        return await self._call_or_queue(call.MeterValues(evse_id=evse_id, meter_value=meter_value))

    async def notify_event(
        self,
        event_data: list[dict[str, Any]],
        *,
        seq_no: int = 0,
        tbc: bool = False,
        generated_at: datetime | None = None,
    ) -> dict[str, Any]:
        return await self._call(
            call.NotifyEvent(
                generated_at=format_timestamp(generated_at or utc_now()),
                seq_no=seq_no,
                event_data=event_data,
                tbc=tbc,
            )
        )

    async def security_event(self, type_: str, *, tech_info: str | None = None) -> dict[str, Any]:
        return await self._call(
            call.SecurityEventNotification(
                type=type_, timestamp=format_timestamp(utc_now()), tech_info=tech_info
            )
        )

    async def firmware_status(self, status: str, request_id: int | None = None) -> dict[str, Any]:
        return await self._call(
            call.FirmwareStatusNotification(status=status, request_id=request_id)
        )

    async def log_status(self, status: str, request_id: int | None = None) -> dict[str, Any]:
        return await self._call(call.LogStatusNotification(status=status, request_id=request_id))

    async def reservation_status(self, reservation_id: int, status: str) -> dict[str, Any]:
        return await self._call(
            call.ReservationStatusUpdate(
                reservation_id=reservation_id, reservation_update_status=status
            )
        )

    async def notify_charging_limit(
        self,
        source: str,
        *,
        evse_id: int | None = None,
        schedule: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        return await self._call(
            call.NotifyChargingLimit(
                charging_limit={"chargingLimitSource": source},
                charging_schedule=schedule,
                evse_id=evse_id,
            )
        )

    async def cleared_charging_limit(
        self, source: str, *, evse_id: int | None = None
    ) -> dict[str, Any]:
        return await self._call(
            call.ClearedChargingLimit(charging_limit_source=source, evse_id=evse_id)
        )

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: Any = None
    ) -> dict[str, Any]:
        """Note: the library camelCases the keys of dicts inside ``data`` before sending."""
        return await self._call(
            call.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data)
        )

    async def notify_report(self, request_id: int) -> list[dict[str, Any]]:
        """Send the whole base report as NotifyReport pages; return the CSMS's answers."""
        generated_at = format_timestamp(utc_now())
        pages = paginate(report_data(self.config), self.config.report_page_size)
        responses = []
        for seq_no, page in enumerate(pages):
            payload: dict[str, Any] = {
                "requestId": request_id,
                "generatedAt": generated_at,
                "seqNo": seq_no,
                "tbc": seq_no < len(pages) - 1,
            }
            if page:
                payload["reportData"] = page
            self._require_connection()
            self.reports_sent.append(payload)
            responses.append(
                await self._call(
                    call.NotifyReport(
                        request_id=request_id,
                        generated_at=generated_at,
                        seq_no=seq_no,
                        report_data=page or None,
                        tbc=payload["tbc"],
                    )
                )
            )
        return responses

    def start_report(self, request_id: int) -> None:
        """Send the base report from a background task (see ``wait_background``)."""
        self._spawn(self.notify_report(request_id), f"report-{request_id}")

    # ------------------------------------------------------------------ offline behaviour

    async def come_online(self) -> list[dict[str, Any]]:
        """(Re)connect if needed (no BootNotification) and replay the queue in order.

        If a replayed call fails, the simulator stays offline and the unsent items stay queued.
        """
        if not self.connected:
            await self.connect()
        responses: list[dict[str, Any]] = []
        while self._queue:
            responses.append(await self._call(self._queue[0].payload))
            self._queue.pop(0)
        self._offline = False
        return responses

    def _track_transaction(
        self, event_type: str, transaction_id: str, evse: tuple[int, int | None] | None
    ) -> None:
        if event_type == "Ended":
            self.active_transactions.pop(transaction_id, None)
        elif evse is not None or transaction_id not in self.active_transactions:
            known = self.active_transactions.get(transaction_id)
            self.active_transactions[transaction_id] = evse[0] if evse is not None else known


def _evse(evse_id: int, connector_id: int | None) -> dict[str, int]:
    return {"id": evse_id} if connector_id is None else {"id": evse_id, "connectorId": connector_id}
