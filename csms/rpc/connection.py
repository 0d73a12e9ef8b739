"""One charger's OCPP-J connection: receive loop, dispatch of its Calls to ``@on`` handlers,
CallErrors for bad input, and outgoing calls whose every failure is an outcome value.

Calls from the charger are handled one at a time, in order, by a worker task; responses to our
own calls are matched as soon as they arrive, so a handler may call the charger without
deadlocking the receive loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar, cast

from ocpp.routing import create_route_map
from ocpp.routing import on as _ocpp_on
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from csms.domain.commands import (
    ChargerCommand,
    CommandAnswer,
    CommandStatus,
    Unbuildable,
    answer_to_failure,
)
from csms.domain.model import OcppVersion, RegistrationStatus
from csms.domain.outcomes import (
    CallAnswered,
    CallFailed,
    CallInvalid,
    CallOutcome,
    CallTimedOut,
    ChargerOffline,
)
from csms.rpc.frames import (
    Call,
    CallError,
    CallResult,
    FrameError,
    RpcError,
    UnsolicitedResponse,
    code_for,
    encode_call,
    encode_error,
    encode_result,
    parse_frame,
)
from csms.rpc.schemas import REQUEST, RESPONSE, SchemaViolation, UnknownSchema, validate

log = logging.getLogger(__name__)

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
FrameSink = Callable[[str, str, str], None]


F = TypeVar("F", bound=Callable[..., Awaitable[dict[str, Any]]])


def on(action: str) -> Callable[[F], F]:
    """The ``ocpp`` package's ``@on`` route decorator, typed."""
    return cast(Callable[[F], F], _ocpp_on(action))


class _Disconnected(Exception):
    """The connection closed while a call waited for its answer."""


class InvalidAnswer(Exception):
    """The answer we built violates the OCPP schema (a bug on our side)."""


class HandlerError(Exception):
    """Raised by a handler to answer with a specific CallError (semantic violations)."""

    def __init__(self, error: RpcError, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class RpcConnection:
    version: ClassVar[OcppVersion]
    actions: ClassVar[frozenset[str]]
    """Every action of this OCPP version (a Call for anything else is NotImplemented)."""
    boot_action: ClassVar[str] = "BootNotification"

    def __init__(
        self,
        charger_id: str,
        websocket: ServerConnection,
        *,
        call_timeout_s: float,
        record_frame: FrameSink | None = None,
        registration: RegistrationStatus = RegistrationStatus.ACCEPTED,
    ) -> None:
        self.charger_id = charger_id
        self.websocket = websocket
        self.registration = registration
        self._call_timeout_s = call_timeout_s
        self._record = record_frame
        self._routes: dict[str, dict[str, Any]] = create_route_map(self)
        self._inbox: asyncio.Queue[Call] = asyncio.Queue()
        self._pending: dict[str, asyncio.Future[CallResult | CallError]] = {}
        self._call_lock = asyncio.Lock()
        self._busy = False
        self._closing = False
        self._after_reply: list[Callable[[], Awaitable[None]]] = []
        self._background: set[asyncio.Task[None]] = set()

    # --- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Serve until the socket closes."""
        worker = asyncio.create_task(self._work(), name=f"ocpp-calls-{self.charger_id}")
        try:
            async for message in self.websocket:
                if isinstance(message, bytes):
                    self._record_frame("in", message.decode("utf-8", "replace"))
                    await self._send_error(
                        CallError(
                            "-1",
                            code_for(RpcError.RPC_FRAMEWORK_ERROR, self.version),
                            "OCPP-J uses text frames",
                        )
                    )
                    continue
                await self._on_frame(message)
        except ConnectionClosed:
            pass
        finally:
            await self._stop_worker(worker)
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(_Disconnected())

    async def _stop_worker(self, worker: asyncio.Task[None]) -> None:
        """Let a call being handled finish (its transaction commits or rolls back whole);
        calls still queued are dropped: the charger repeats them after reconnecting."""
        self._closing = True
        if not self._busy:
            worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.websocket.close(code, reason)

    # --- inbound -------------------------------------------------------------------------

    async def _on_frame(self, text: str) -> None:
        self._record_frame("in", text)
        try:
            frame = parse_frame(text)
        except FrameError as exc:
            log.warning("%s sent a bad frame: %s", self.charger_id, exc.description)
            await self._send_error(
                CallError(exc.unique_id, code_for(exc.error, self.version), exc.description)
            )
            return
        except UnsolicitedResponse as exc:
            log.warning("%s: %s", self.charger_id, exc)
            return
        if isinstance(frame, Call):
            self._inbox.put_nowait(frame)
            return
        future = self._pending.get(frame.unique_id)
        if future is None or future.done():
            log.warning("%s answered unknown or expired call %s", self.charger_id, frame.unique_id)
            return
        future.set_result(frame)

    async def _work(self) -> None:
        # No local holds a call while the next one is awaited: a charger's last call (its
        # frame, payload, reply) would otherwise stay alive until its next message, and every
        # collection of the youngest generation would visit those of every idle charger.
        while not self._closing:
            if not await self._serve(await self._inbox.get()):
                return

    async def _serve(self, call: Call) -> bool:
        """Answer one call; False once the connection is closed."""
        self._busy = True
        try:
            await self._handle_call(call)
        except ConnectionClosed:
            return False
        except Exception:
            log.exception("%s: failed to answer %s", self.charger_id, call.action)
        finally:
            self._busy = False
        return True

    async def _handle_call(self, call: Call) -> None:
        try:
            payload = await self._dispatch(call)
        except (HandlerError, SchemaViolation, FrameError) as exc:
            self._after_reply.clear()
            log.warning("%s %s refused: %s", self.charger_id, call.action, exc)
            await self._send_error(
                CallError(call.unique_id, code_for(exc.error, self.version), exc.description)
            )
            return
        except Exception:
            self._after_reply.clear()
            log.exception("%s: handler for %s failed", self.charger_id, call.action)
            await self._send_error(
                CallError(
                    call.unique_id,
                    code_for(RpcError.INTERNAL_ERROR, self.version),
                    "internal error while handling the request",
                )
            )
            return
        await self._send(encode_result(CallResult(call.unique_id, payload)))
        if self._after_reply:  # rare: most calls leave the (empty) list as it is
            follow_ups, self._after_reply = self._after_reply, []
            for work in follow_ups:
                self._spawn(work, f"{self.charger_id}-after-{call.action}")

    def after_reply(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` once the answer to the call being handled has been sent (for calls
        to the charger that must follow our answer, e.g. a report request after a boot)."""
        self._after_reply.append(work)

    def _spawn(self, work: Callable[[], Awaitable[None]], name: str) -> None:
        async def guarded() -> None:
            try:
                await work()
            except Exception:
                log.exception("%s: follow-up %s failed", self.charger_id, name)

        task = asyncio.create_task(guarded(), name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _dispatch(self, call: Call) -> dict[str, Any]:
        route = self._routes.get(call.action)
        if call.action not in self.actions:
            raise FrameError(RpcError.NOT_IMPLEMENTED, f"unknown action {call.action!r}")
        if route is None or "_on_action" not in route:
            raise FrameError(
                RpcError.NOT_SUPPORTED, f"{call.action} is not supported by this central system"
            )
        if self.registration is not RegistrationStatus.ACCEPTED and call.action != self.boot_action:
            raise FrameError(
                RpcError.SECURITY_ERROR,
                f"charger is {self.registration.value}: only {self.boot_action} is allowed",
            )
        validate(REQUEST, call.action, call.payload, self.version)
        handler: Handler = route["_on_action"]
        response = await handler(call.payload)
        try:
            validate(RESPONSE, call.action, response, self.version)
        except SchemaViolation as exc:
            # Our bug, not the charger's: answer InternalError, never a constraint violation.
            raise InvalidAnswer(f"our {call.action} answer violates the schema: {exc}") from exc
        return response

    # --- outbound ------------------------------------------------------------------------

    # --- commands ------------------------------------------------------------------------

    def build_command(self, command: ChargerCommand) -> tuple[str, dict[str, Any]]:
        """This version's action and payload for ``command`` (raises ``Unbuildable``)."""
        raise NotImplementedError

    def parse_answer(self, command: ChargerCommand, payload: dict[str, Any]) -> CommandAnswer:
        """This version's reading of the charger's (schema-valid) answer to ``command``."""
        raise NotImplementedError

    async def execute(
        self, command: ChargerCommand, *, timeout_s: float | None = None
    ) -> CommandAnswer:
        """Send ``command`` as this version's call; every outcome is an answer value."""
        try:
            action, payload = self.build_command(command)
        except Unbuildable as exc:
            return CommandAnswer(status=CommandStatus.FAILED, detail=str(exc))
        outcome = await self.call(action, payload, timeout_s=timeout_s)
        failure = answer_to_failure(outcome)
        if failure is not None:
            log.warning("%s: %s %s: %s", self.charger_id, action, failure.status, failure.detail)
            return failure
        assert isinstance(outcome, CallAnswered)
        answer = self.parse_answer(command, outcome.payload)
        log.info("%s: %s answered %s", self.charger_id, action, answer.status.value)
        return answer

    async def call(
        self, action: str, payload: dict[str, Any], *, timeout_s: float | None = None
    ) -> CallOutcome:
        """Send one Call and wait for its answer. One outstanding call at a time (OCPP-J)."""
        try:
            validate(REQUEST, action, payload, self.version)
        except (SchemaViolation, UnknownSchema) as exc:
            return CallInvalid(reason=f"request: {exc}")
        timeout = timeout_s if timeout_s is not None else self._call_timeout_s
        unique_id = str(uuid.uuid4())
        async with self._call_lock:
            future: asyncio.Future[CallResult | CallError] = (
                asyncio.get_running_loop().create_future()
            )
            self._pending[unique_id] = future
            try:
                await self._send(encode_call(Call(unique_id, action, payload)))
                answer = await asyncio.wait_for(future, timeout)
            except (ConnectionClosed, _Disconnected):
                return ChargerOffline(charger_id=self.charger_id)
            except TimeoutError:
                return CallTimedOut(timeout_s=timeout)
            finally:
                self._pending.pop(unique_id, None)
        if isinstance(answer, CallError):
            return CallFailed(
                error_code=answer.error_code, description=answer.description, details=answer.details
            )
        try:
            validate(RESPONSE, action, answer.payload, self.version)
        except SchemaViolation as exc:
            return CallInvalid(reason=f"response: {exc.description}")
        return CallAnswered(payload=answer.payload)

    # --- sending -------------------------------------------------------------------------

    async def _send_error(self, error: CallError) -> None:
        await self._send(encode_error(error))

    async def _send(self, text: str) -> None:
        self._record_frame("out", text)
        await self.websocket.send(text)

    def _record_frame(self, direction: str, text: str) -> None:
        if self._record is not None:
            self._record(self.charger_id, direction, text)
