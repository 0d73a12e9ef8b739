"""OCPP 1.6J charge point simulator built on the client side of the ``ocpp`` library.

Every charger -> CSMS method returns the *raw camelCase payload* of the CallResult as received
on the wire (captured in ``route_message`` before the library turns it into a dataclass), and
raises ``CallErrorReceived`` when the central system answered with a CallError. Other
``OCPPError``s (e.g. an outgoing or incoming payload failing the 1.6 schema) propagate unchanged.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Self
from urllib.parse import quote

from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError
from ocpp.messages import Call, CallError, CallResult, unpack
from ocpp.v16 import ChargePoint, call
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.protocol import State
from websockets.typing import Subprotocol

from simulators.charger.common import (
    CallErrorReceived,
    basic_auth_header,
    format_timestamp,
    utc_now,
)
from simulators.charger.v16_handlers import CsmsCallHandlers16, default_configuration

__all__ = ["CallErrorReceived", "ChargerSimulator16", "SimulatorConfig16"]

LOGGER = logging.getLogger(__name__)


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


@dataclass
class _Queued:
    """A transaction-related call held back while offline."""

    payload: Any  # an ocpp.v16.call dataclass
    placeholder: int | None = None  # local transaction id handed out for a queued start


class ChargerSimulator16(CsmsCallHandlers16, ChargePoint):  # type: ignore[misc]
    def __init__(self, config: SimulatorConfig16) -> None:
        super().__init__(config.charger_id, None, response_timeout=config.response_timeout)
        self.config = config
        self.configuration = default_configuration(config.connectors)
        # CSMS -> charger: every call received, and the fault knobs applied to them.
        self.received_calls: list[tuple[str, dict[str, Any]]] = []
        self.silent_actions: set[str] = set()
        self.call_error_actions: dict[str, str] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        # Offline queue and placeholder -> real transaction id map.
        self.transaction_id_map: dict[int, int] = {}
        self.receive_error: BaseException | None = None
        self._offline = False
        self._queue: list[_Queued] = []
        self._placeholders = itertools.count(-1, -1)
        self._ws: ClientConnection | None = None
        self._receive_task: asyncio.Task[None] | None = None
        self._pending: set[str] = set()
        self._replies: dict[str, Any] = {}  # unique id -> CallResult | CallError
        self._unsolicited: asyncio.Queue[str] = asyncio.Queue()
        self._call_seen = asyncio.Event()
        self._calls_waited: dict[str, int] = {}

    # ------------------------------------------------------------------ connection lifecycle

    @property
    def url(self) -> str:
        return f"{self.config.url.rstrip('/')}/{quote(self.config.charger_id, safe='')}"

    @property
    def connected(self) -> bool:
        return (
            self._ws is not None
            and self._ws.state is State.OPEN
            and self._receive_task is not None
            and not self._receive_task.done()
        )

    @property
    def subprotocol(self) -> str | None:
        """Subprotocol selected by the CSMS during the handshake (None if none)."""
        return None if self._ws is None else self._ws.subprotocol

    async def connect(self) -> None:
        if self.connected:
            raise RuntimeError(f"{self.config.charger_id} is already connected")
        headers = {}
        if self.config.password is not None:
            headers["Authorization"] = basic_auth_header(
                self.config.charger_id, self.config.password
            )
        self._ws = await connect(
            self.url,
            subprotocols=[Subprotocol(p) for p in self.config.subprotocols] or None,
            compression=None,
            additional_headers=headers,
            open_timeout=self.config.response_timeout,
        )
        self._connection = self._ws
        self._response_queue: asyncio.Queue[Any] = asyncio.Queue()
        self.receive_error = None
        self._receive_task = asyncio.create_task(
            self._receive_loop(), name=f"ocpp16-receive-{self.config.charger_id}"
        )

    async def disconnect(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._receive_task is not None:
            await self._receive_task

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def _receive_loop(self) -> None:
        try:
            await self.start()  # the library's loop: recv() + route_message() forever
        except ConnectionClosedOK:
            pass
        except Exception as exc:
            LOGGER.warning("%s: receive loop ended: %r", self.config.charger_id, exc)
            self.receive_error = exc

    def _require_connection(self) -> tuple[ClientConnection, asyncio.Task[None]]:
        if self._ws is None or self._receive_task is None:
            raise ConnectionError(f"{self.config.charger_id} is not connected")
        if not self.connected:
            code = self._ws.close_code
            raise ConnectionError(f"{self.config.charger_id}: connection closed (code {code})")
        return self._ws, self._receive_task

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
            self._queue.append(_Queued(payload, placeholder))
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

    async def send_raw(self, text: str) -> None:
        ws, _ = self._require_connection()
        await ws.send(text)

    async def recv_raw(self, timeout: float = 5.0) -> str:  # noqa: ASYNC109 (public API)
        """Next frame that was neither a reply to our own calls nor a CSMS-initiated call."""
        return await asyncio.wait_for(self._unsolicited.get(), timeout)

    async def _call(self, payload: Any) -> dict[str, Any]:
        """Send ``payload`` via the library's ``call`` and return the raw reply payload."""
        _, receive_task = self._require_connection()
        payload = self._with_real_transaction_id(payload)
        unique_id = str(uuid.uuid4())
        self._pending.add(unique_id)
        call_task: asyncio.Future[Any] = asyncio.ensure_future(
            self.call(payload, suppress=False, unique_id=unique_id)
        )
        try:
            await asyncio.wait({call_task, receive_task}, return_when=asyncio.FIRST_COMPLETED)
            if not call_task.done():
                raise ConnectionError(
                    f"connection closed while waiting for the {type(payload).__name__} reply"
                )
            call_task.result()
        except (OCPPError, UnknownCallErrorCodeError) as exc:
            # The library maps CallErrors to exceptions (UnknownCallErrorCodeError for
            # non-standard codes); report the raw CallError instead.
            reply = self._replies.get(unique_id)
            if isinstance(reply, CallError):
                raise CallErrorReceived(
                    str(reply.error_code), str(reply.error_description), reply.error_details
                ) from exc
            raise
        except ConnectionClosed as exc:
            raise ConnectionError(f"connection closed: {exc}") from exc
        finally:
            call_task.cancel()
            self._pending.discard(unique_id)
            reply = self._replies.pop(unique_id, None)
        return dict(reply.payload)

    # ------------------------------------------------------------------ offline behaviour

    @property
    def offline(self) -> bool:
        return self._offline

    @property
    def queued_actions(self) -> list[str]:
        """Actions waiting in the offline queue, in replay order."""
        return [type(item.payload).__name__ for item in self._queue]

    def go_offline(self) -> None:
        """Queue StartTransaction/MeterValues/StopTransaction locally from now on."""
        self._offline = True

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

    async def _call_or_queue(self, payload: Any) -> dict[str, Any]:
        if self._offline:
            self._queue.append(_Queued(payload))
            return {}
        return await self._call(payload)

    def _with_real_transaction_id(self, payload: Any) -> Any:
        placeholder = getattr(payload, "transaction_id", None)
        if placeholder in self.transaction_id_map:
            return dataclasses.replace(payload, transaction_id=self.transaction_id_map[placeholder])
        return payload

    # ------------------------------------------------------------------ CSMS -> charger

    async def wait_for_call(
        self,
        action: str,
        timeout: float = 5.0,  # noqa: ASYNC109 (mirrors recv_raw)
    ) -> dict[str, Any]:
        """Payload of the next not-yet-awaited CSMS call of ``action`` (waits if needed)."""
        async with asyncio.timeout(timeout):
            while True:
                matches = [payload for name, payload in self.received_calls if name == action]
                seen = self._calls_waited.get(action, 0)
                if len(matches) > seen:
                    self._calls_waited[action] = seen + 1
                    return matches[seen]
                self._call_seen.clear()
                await self._call_seen.wait()

    async def route_message(self, raw_msg: str | bytes) -> None:
        """Split incoming frames: our replies, CSMS calls, and unsolicited frames (recv_raw)."""
        text = raw_msg if isinstance(raw_msg, str) else raw_msg.decode(errors="replace")
        try:
            msg = unpack(raw_msg)
        except OCPPError:
            LOGGER.warning("%s: received a non-OCPP frame: %s", self.config.charger_id, text)
            self._unsolicited.put_nowait(text)
            return
        if isinstance(msg, Call):
            await self._on_csms_call(msg, raw_msg)
        elif isinstance(msg.unique_id, str) and msg.unique_id in self._pending:
            self._replies[msg.unique_id] = msg
            self._response_queue.put_nowait(msg)
        else:
            self._unsolicited.put_nowait(text)

    async def _on_csms_call(self, msg: Any, raw_msg: str | bytes) -> None:
        action = str(msg.action)
        self.received_calls.append((action, msg.payload if isinstance(msg.payload, dict) else {}))
        self._call_seen.set()
        if action in self.silent_actions:
            return
        if action in self.call_error_actions:
            error = CallError(msg.unique_id, self.call_error_actions[action], "Simulated error", {})
            await self._send(error.to_json())
        elif action in self.answers:
            await self._send(CallResult(msg.unique_id, self.answers[action]).to_json())
        else:
            await super().route_message(raw_msg)
