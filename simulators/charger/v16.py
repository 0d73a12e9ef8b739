"""OCPP 1.6J charge point simulator built on the client side of the ``ocpp`` library.

Every charger -> CSMS method returns the *raw camelCase payload* of the CallResult as received
on the wire (captured in ``route_message`` before the library turns it into a dataclass), and
raises ``CallErrorReceived`` when the central system answered with a CallError. Other
``OCPPError``s (e.g. an outgoing or incoming payload failing the 1.6 schema) propagate unchanged.
"""

from __future__ import annotations

import dataclasses
import itertools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ocpp.v16 import ChargePoint, call

from simulators.charger.common import CallErrorReceived, format_timestamp, utc_now
from simulators.charger.core import QueuedCall, SimulatorCore
from simulators.charger.v16_handlers import CsmsCallHandlers16, default_configuration

__all__ = ["CallErrorReceived", "ChargerSimulator16", "SimulatorConfig16"]


@dataclass
class SimulatorConfig16:
    url: str  # base URL; the charger id is appended as "/{charger_id}"
    charger_id: str
    password: str | None = None  # HTTP Basic auth (username = charger_id) when set
    connectors: int = 1
    vendor: str = "ocpi-bridge-sim"
    model: str = "SIM-16"
    serial_number: str | None = None
    meter_serial_number: str | None = None
    response_timeout: float = 10.0
    subprotocols: tuple[str, ...] = ("ocpp1.6",)


class ChargerSimulator16(CsmsCallHandlers16, SimulatorCore, ChargePoint):  # type: ignore[misc]
    task_prefix = "ocpp16"
    config: SimulatorConfig16

    def __init__(self, config: SimulatorConfig16) -> None:
        super().__init__(config)
        self.configuration = default_configuration(config.connectors)
        # Offline queue and placeholder -> real transaction id map.
        self.transaction_id_map: dict[int, int] = {}
        self._placeholders = itertools.count(-1, -1)

    # ------------------------------------------------------------------ charger -> CSMS

    async def boot(self) -> dict[str, Any]:
        response = await self._call(
            call.BootNotification(
                charge_point_model=self.config.model,
                charge_point_vendor=self.config.vendor,
                charge_point_serial_number=self.config.serial_number,
                meter_serial_number=self.config.meter_serial_number,
            )
        )
        if response.get("status") == "Accepted" and "interval" in response:
            self.configuration["HeartbeatInterval"] = str(response["interval"])
        return response

    async def heartbeat(self) -> dict[str, Any]:
        return await self._call(call.Heartbeat())

    async def status(
        self,
        connector_id: int,
        status: str,
        error_code: str = "NoError",
        *,
        info: str | None = None,
        timestamp: datetime | None = None,
        vendor_error_code: str | None = None,
    ) -> dict[str, Any]:
        return await self._call(
            call.StatusNotification(
                connector_id=connector_id,
                error_code=error_code,
                status=status,
                timestamp=format_timestamp(timestamp or utc_now()),
                info=info,
                vendor_error_code=vendor_error_code,
            )
        )

    async def authorize(self, id_tag: str) -> dict[str, Any]:
        return await self._call(call.Authorize(id_tag=id_tag))

    async def start_transaction(
        self,
        connector_id: int,
        id_tag: str,
        meter_start_wh: int,
        *,
        timestamp: datetime | None = None,
        reservation_id: int | None = None,
    ) -> dict[str, Any]:
        payload = call.StartTransaction(
            connector_id=connector_id,
            id_tag=id_tag,
            meter_start=meter_start_wh,
            timestamp=format_timestamp(timestamp or utc_now()),
            reservation_id=reservation_id,
        )
        if self._offline:
            placeholder = next(self._placeholders)
            self._queue.append(QueuedCall(payload, placeholder))
            return {"transactionId": placeholder}
        return await self._call(payload)

    async def meter_values(
        self,
        connector_id: int,
        sampled: list[dict[str, Any]],
        *,
        transaction_id: int | None = None,
        timestamp: datetime | None = None,
    ) -> dict[str, Any]:
        meter_value = {
            "timestamp": format_timestamp(timestamp or utc_now()),
            "sampledValue": sampled,
        }
        payload = call.MeterValues(
            connector_id=connector_id, meter_value=[meter_value], transaction_id=transaction_id
        )
        return await self._call_or_queue(payload)

    async def stop_transaction(
        self,
        transaction_id: int,
        meter_stop_wh: int,
        *,
        timestamp: datetime | None = None,
        reason: str | None = None,
        id_tag: str | None = None,
        transaction_data: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """``transaction_data`` is a list of raw MeterValue dicts ({timestamp, sampledValue})."""
        payload = call.StopTransaction(
            meter_stop=meter_stop_wh,
            timestamp=format_timestamp(timestamp or utc_now()),
            transaction_id=transaction_id,
            reason=reason,
            id_tag=id_tag,
            transaction_data=transaction_data,
        )
        return await self._call_or_queue(payload)

    async def data_transfer(
        self, vendor_id: str, message_id: str | None = None, data: str | None = None
    ) -> dict[str, Any]:
        return await self._call(
            call.DataTransfer(vendor_id=vendor_id, message_id=message_id, data=data)
        )

    async def diagnostics_status(self, status: str) -> dict[str, Any]:
        return await self._call(call.DiagnosticsStatusNotification(status=status))

    async def firmware_status(self, status: str) -> dict[str, Any]:
        return await self._call(call.FirmwareStatusNotification(status=status))

    # ------------------------------------------------------------------ offline behaviour

    async def come_online(self) -> list[dict[str, Any]]:
        """(Re)connect if needed (no BootNotification) and replay the queue in order.

        Placeholder transaction ids are replaced by the ids the CSMS assigns. If a replayed call
        fails, the simulator stays offline and the unsent items stay queued for the next attempt.
        """
        if not self.connected:
            await self.connect()
        responses: list[dict[str, Any]] = []
        while self._queue:
            item = self._queue[0]
            response = await self._call(item.payload)
            self._queue.pop(0)
            if item.placeholder is not None and "transactionId" in response:
                self.transaction_id_map[item.placeholder] = int(response["transactionId"])
            responses.append(response)
        self._offline = False
        return responses

    def _prepare_payload(self, payload: Any) -> Any:
        """Replace a placeholder transaction id by the one the CSMS assigned."""
        placeholder = getattr(payload, "transaction_id", None)
        if placeholder in self.transaction_id_map:
            return dataclasses.replace(payload, transaction_id=self.transaction_id_map[placeholder])
        return payload
