"""Connection and message plumbing shared by the OCPP 1.6 and 2.0.1 charger simulators.

``SimulatorCore`` sits between a version's handler mixin and that version's ``ChargePoint``
class of the ``ocpp`` library (``class Sim(Handlers, SimulatorCore, ocpp.vXX.ChargePoint)``).
It owns the websocket, the library's receive loop, the raw-reply capture used by ``_call``,
the fault knobs applied to CSMS-initiated calls, background tasks, follow-ups deferred until a
CSMS call has been answered (``_defer``) and timers (``_arm_timer``).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, Self
from urllib.parse import quote

from ocpp.charge_point import ChargePoint
from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError
from ocpp.messages import Call, CallError, CallResult, unpack
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.protocol import State
from websockets.typing import Subprotocol

from simulators.charger.common import CallErrorReceived, basic_auth_header

LOGGER = logging.getLogger(__name__)


@dataclass
class QueuedCall:
    """A transaction-related call held back while offline."""

    payload: Any  # an ocpp.v16.call / ocpp.v201.call dataclass
    placeholder: int | None = None  # 1.6: local transaction id handed out for a queued start


FollowUp = Callable[[], Coroutine[Any, Any, Any]]


class ConnectionConfig(Protocol):
    @property
    def url(self) -> str: ...  # base URL; the charger id is appended as "/{charger_id}"
    @property
    def charger_id(self) -> str: ...
    @property
    def password(self) -> str | None: ...  # HTTP Basic auth (username = charger_id) when set
    @property
    def response_timeout(self) -> float: ...
    @property
    def subprotocols(self) -> tuple[str, ...]: ...


class SimulatorCore(ChargePoint):  # type: ignore[misc]
    """Version-independent part of a simulator; see the module docstring for the MRO."""

    task_prefix = "ocpp"
    config: ConnectionConfig

    def __init__(self, config: ConnectionConfig) -> None:
        super().__init__(config.charger_id, None, response_timeout=config.response_timeout)
        self.config = config
        # CSMS -> charger: every call received, and the fault knobs applied to them.
        self.received_calls: list[tuple[str, dict[str, Any]]] = []
        self.silent_actions: set[str] = set()
        self.call_error_actions: dict[str, str] = {}
        self.answers: dict[str, dict[str, Any]] = {}
        self.receive_error: BaseException | None = None
        self.background_errors: list[BaseException] = []
        self._ws: ClientConnection | None = None
        self._receive_task: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._pending: set[str] = set()
        self._replies: dict[str, Any] = {}  # unique id -> CallResult | CallError
        self._unsolicited: asyncio.Queue[str] = asyncio.Queue()
        self._call_seen = asyncio.Event()
        self._calls_waited: dict[str, int] = {}
        # Offline queue: transaction-related calls held back until come_online().
        self._offline = False
        self._queue: list[QueuedCall] = []
        # The CSMS call being handled: (unique id, action, raw camelCase payload).
        self._current_call: tuple[str, str, dict[str, Any]] | None = None
        self._deferred: dict[str, list[tuple[str, FollowUp]]] = {}
        self._timers: dict[str, asyncio.Task[Any]] = {}

    # ------------------------------------------------------------------ offline behaviour

    @property
    def offline(self) -> bool:
        return self._offline

    @property
    def queued_actions(self) -> list[str]:
        """Actions waiting in the offline queue, in replay order."""
        return [type(item.payload).__name__ for item in self._queue]

    def go_offline(self) -> None:
        """Queue the version's transaction-related calls locally from now on."""
        self._offline = True

    async def _call_or_queue(self, payload: Any) -> dict[str, Any]:
        if self._offline:
            self._queue.append(QueuedCall(payload))
            return {}
        return await self._call(payload)

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
            self._receive_loop(), name=f"{self.task_prefix}-receive-{self.config.charger_id}"
        )
        self._on_connected()

    def _on_connected(self) -> None:
        """Hook run once connected (e.g. to re-arm timers); nothing by default."""

    async def disconnect(self) -> None:
        """Close the connection; timers and background tasks still running are cancelled."""
        for key in list(self._timers):
            self._cancel_timer(key)
        for task in list(self._background):
            task.cancel()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
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

    # ------------------------------------------------------------------ background tasks

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` in a task kept referenced until done; failures are logged and kept."""
        task = asyncio.create_task(coro, name=f"{self.task_prefix}-{name}-{self.config.charger_id}")
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.background_errors.append(exc)
            LOGGER.warning(
                "%s: background task %s failed: %r", self.config.charger_id, task.get_name(), exc
            )

    async def wait_background(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until every background task (e.g. NotifyReport pages, the follow-ups of a
        remote start) has finished; timers are not waited for."""
        async with asyncio.timeout(timeout):
            while self._background:
                await asyncio.gather(*self._background, return_exceptions=True)

    def _defer(self, name: str, follow_up: FollowUp) -> None:
        """Run ``follow_up()`` in a background task once the answer to the CSMS call being
        handled has been sent (a charger answers first, then acts)."""
        if self._current_call is None:
            raise RuntimeError("_defer() outside the handling of a CSMS call")
        self._deferred.setdefault(self._current_call[0], []).append((name, follow_up))

    def _arm_timer(self, key: str, delay_s: float, follow_up: FollowUp) -> None:
        """Run ``follow_up()`` after ``delay_s`` seconds (replacing the timer ``key``); timers
        are cancelled on disconnect, failures are kept in ``background_errors``."""
        self._cancel_timer(key)

        async def fire() -> None:
            await asyncio.sleep(max(0.0, delay_s))
            self._timers.pop(key, None)
            await follow_up()

        task = asyncio.create_task(fire(), name=f"{self.task_prefix}-timer-{key}")
        task.add_done_callback(self._timer_done)
        self._timers[key] = task

    def _cancel_timer(self, key: str) -> None:
        task = self._timers.pop(key, None)
        if task is not None:
            task.cancel()

    def _timer_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self.background_errors.append(exc)
            LOGGER.warning("%s: timer %s failed: %r", self.config.charger_id, task.get_name(), exc)

    # ------------------------------------------------------------------ charger -> CSMS

    async def send_raw(self, text: str) -> None:
        ws, _ = self._require_connection()
        await ws.send(text)

    async def recv_raw(self, timeout: float = 5.0) -> str:  # noqa: ASYNC109 (public API)
        """Next frame that was neither a reply to our own calls nor a CSMS-initiated call."""
        return await asyncio.wait_for(self._unsolicited.get(), timeout)

    def _prepare_payload(self, payload: Any) -> Any:
        """Hook applied to every outgoing payload right before it is sent."""
        return payload

    async def _call(self, payload: Any) -> dict[str, Any]:
        """Send ``payload`` via the library's ``call`` and return the raw reply payload."""
        _, receive_task = self._require_connection()
        payload = self._prepare_payload(payload)
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
            payload = msg.payload if isinstance(msg.payload, dict) else {}
            self._current_call = (str(msg.unique_id), action, payload)
            try:
                await super().route_message(raw_msg)  # returns once the answer was sent
            finally:
                self._current_call = None
            for name, follow_up in self._deferred.pop(str(msg.unique_id), []):
                self._spawn(follow_up(), name)

    def current_payload(self) -> dict[str, Any]:
        """Raw (camelCase, as on the wire) payload of the CSMS call being handled."""
        if self._current_call is None:
            raise RuntimeError("current_payload() outside the handling of a CSMS call")
        return self._current_call[2]
