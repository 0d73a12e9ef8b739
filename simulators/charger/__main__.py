"""CLI: ``python -m simulators.charger --ocpp 1.6 --url ws://127.0.0.1:9000/ocpp --id CP1``.

Prints every response as one JSON line ``{"action": ..., "response": {...}}`` on stdout and
exits non-zero with a one-line message on stderr on a CallError or a connection failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from simulators.charger.common import CallErrorReceived
from simulators.charger.scenarios import SCENARIOS, ScenarioError
from simulators.charger.v16 import ChargerSimulator16, SimulatorConfig16

PENDING_RETRY_S = 10


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.charger", description="OCPP charge point simulator"
    )
    parser.add_argument("--ocpp", choices=["1.6", "2.0.1"], default="1.6")
    parser.add_argument("--url", required=True, help="CSMS base URL, e.g. ws://host:9000/ocpp")
    parser.add_argument("--id", required=True, dest="charger_id", help="charge point id")
    parser.add_argument("--password", help="HTTP Basic auth password (username = id)")
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), help="default: boot + heartbeats")
    parser.add_argument("--connectors", type=int, default=1)
    parser.add_argument("--id-tag")
    parser.add_argument("--samples", type=int)
    parser.add_argument("--repeat", type=int, default=1, help="run the scenario N times")
    parser.add_argument("--timeout", type=float, default=10.0, help="response timeout (s)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log OCPP frames")
    return parser


def print_response(action: str, response: dict[str, Any]) -> None:
    print(json.dumps({"action": action, "response": response}), flush=True)


async def run(args: argparse.Namespace) -> int:
    config = SimulatorConfig16(
        url=args.url,
        charger_id=args.charger_id,
        password=args.password,
        connectors=args.connectors,
        response_timeout=args.timeout,
    )
    options: dict[str, Any] = {"on_response": print_response}
    if args.id_tag is not None:
        options["id_tag"] = args.id_tag
    if args.samples is not None:
        options["samples"] = args.samples
    try:
        async with ChargerSimulator16(config) as sim:
            if args.scenario is None:
                await _boot_and_heartbeat(sim, options)
            else:
                for _ in range(args.repeat):
                    await SCENARIOS[args.scenario](sim, **options)
    except InvalidStatus as exc:
        return _fail(f"connection refused: HTTP {exc.response.status_code}")
    except (InvalidHandshake, ConnectionClosed) as exc:
        return _fail(f"connection failed: {exc}")
    except TimeoutError as exc:
        return _fail(f"timeout: {exc or 'no response'}")
    except OSError as exc:
        return _fail(f"connection failed: {exc}")
    except CallErrorReceived as exc:
        return _fail(f"call error: {exc}")
    except ScenarioError as exc:
        return _fail(f"scenario failed: {exc}")
    return 0


async def _boot_and_heartbeat(sim: ChargerSimulator16, options: dict[str, Any]) -> None:
    while True:
        result = await SCENARIOS["boot"](sim, **options)
        boot = result.responses[0][1]
        if boot.get("status") == "Accepted":
            break
        if boot.get("status") == "Rejected":
            raise ScenarioError("BootNotification rejected")
        await asyncio.sleep(int(boot.get("interval") or PENDING_RETRY_S))
    interval = int(boot.get("interval") or 0) or int(sim.configuration["HeartbeatInterval"])
    while True:
        await asyncio.sleep(interval)
        print_response("Heartbeat", await sim.heartbeat())


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ocpp != "1.6":
        parser.error(f"OCPP {args.ocpp} is not supported yet (only 1.6)")
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
