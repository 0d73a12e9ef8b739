"""The bare-library ceiling of scenario 2: the ``ocpp`` package's ChargePoint on ``websockets``
answering the load generator's messages with nothing persisted and no other work.

    python -m bench.ceiling --port 0     # prints "ceiling listening on <port>"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import signal
from datetime import UTC, datetime
from typing import Any

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import AuthorizationStatus, RegistrationStatus
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201
from ocpp.v201.enums import RegistrationStatusEnumType
from websockets.asyncio.server import ServerConnection, serve

_transaction_ids = itertools.count(1)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Bare16(ChargePoint16):  # type: ignore[misc]
    """OCPP 1.6 answers, nothing stored."""

    @on(Action16.boot_notification)  # type: ignore[untyped-decorator]
    def on_boot(self, **_: Any) -> Any:
        return result16.BootNotification(
            current_time=_now(), interval=300, status=RegistrationStatus.accepted
        )

    @on(Action16.heartbeat)  # type: ignore[untyped-decorator]
    def on_heartbeat(self, **_: Any) -> Any:
        return result16.Heartbeat(current_time=_now())

    @on(Action16.status_notification)  # type: ignore[untyped-decorator]
    def on_status(self, **_: Any) -> Any:
        return result16.StatusNotification()

    @on(Action16.start_transaction)  # type: ignore[untyped-decorator]
    def on_start(self, **_: Any) -> Any:
        return result16.StartTransaction(
            transaction_id=next(_transaction_ids),
            id_tag_info={"status": AuthorizationStatus.accepted},
        )

    @on(Action16.meter_values)  # type: ignore[untyped-decorator]
    def on_meter_values(self, **_: Any) -> Any:
        return result16.MeterValues()

    @on(Action16.stop_transaction)  # type: ignore[untyped-decorator]
    def on_stop(self, **_: Any) -> Any:
        return result16.StopTransaction()


class Bare201(ChargePoint201):  # type: ignore[misc]
    """OCPP 2.0.1 answers, nothing stored."""

    @on(Action201.boot_notification)  # type: ignore[untyped-decorator]
    def on_boot(self, **_: Any) -> Any:
        return result201.BootNotification(
            current_time=_now(), interval=300, status=RegistrationStatusEnumType.accepted
        )

    @on(Action201.heartbeat)  # type: ignore[untyped-decorator]
    def on_heartbeat(self, **_: Any) -> Any:
        return result201.Heartbeat(current_time=_now())

    @on(Action201.status_notification)  # type: ignore[untyped-decorator]
    def on_status(self, **_: Any) -> Any:
        return result201.StatusNotification()

    @on(Action201.transaction_event)  # type: ignore[untyped-decorator]
    def on_transaction_event(self, **payload: Any) -> Any:
        if "id_token" in payload:
            return result201.TransactionEvent(id_token_info={"status": "Accepted"})
        return result201.TransactionEvent()


async def _handle(websocket: ServerConnection) -> None:
    path = websocket.request.path if websocket.request else "/ocpp/unknown"
    charger_id = path.rstrip("/").rsplit("/", 1)[-1]
    kind = Bare201 if websocket.subprotocol == "ocpp2.0.1" else Bare16
    with contextlib.suppress(Exception):
        await kind(charger_id, websocket).start()


async def _serve(port: int) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with serve(
        _handle,
        "127.0.0.1",
        port,
        subprotocols=["ocpp2.0.1", "ocpp1.6"],  # type: ignore[list-item]
        compression=None,
        ping_interval=None,
    ) as server:
        bound = server.sockets[0].getsockname()[1] if server.sockets else port
        logging.getLogger("bench.ceiling").warning("ceiling listening on %d", bound)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.ceiling", description=__doc__)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    asyncio.run(_serve(args.port))


if __name__ == "__main__":
    main()
