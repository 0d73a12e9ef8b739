"""CLI: ``python -m simulators.charger --ocpp 1.6 --url ws://127.0.0.1:9000/ocpp --id CP1``.

``--ocpp 2.0.1`` runs the 2.0.1 simulator and ``scenarios201`` instead; there ``--evses N``
gives N EVSEs with ``--connectors`` connectors each (default 1 x 1). ``--auto`` makes accepted
remote starts and stops actually start and stop transactions.

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
from simulators.charger.scenario_common import Scenario, ScenarioError
from simulators.charger.scenarios import SCENARIOS
from simulators.charger.scenarios201 import SCENARIOS_201
from simulators.charger.v16 import ChargerSimulator16, SimulatorConfig16
from simulators.charger.v201 import ChargerSimulator201, EvseSpec, SimulatorConfig201
from simulators.charger.v201_model import HEARTBEAT_INTERVAL

PENDING_RETRY_S = 10
REGISTRIES: dict[str, dict[str, Scenario]] = {"1.6": SCENARIOS, "2.0.1": SCENARIOS_201}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulators.charger", description="OCPP charge point simulator"
    )
    parser.add_argument("--ocpp", choices=["1.6", "2.0.1"], default="1.6")
    parser.add_argument("--url", required=True, help="CSMS base URL, e.g. ws://host:9000/ocpp")
    parser.add_argument("--id", required=True, dest="charger_id", help="charge point id")
    parser.add_argument("--password", help="HTTP Basic auth password (username = id)")
    parser.add_argument(
        "--scenario",
        choices=sorted(set(SCENARIOS) | set(SCENARIOS_201)),
        help="default: boot + heartbeats",
    )
    parser.add_argument("--connectors", type=int, default=1, help="2.0.1: per EVSE")
    parser.add_argument("--evses", type=int, help="2.0.1 only: number of EVSEs (default 1)")
    parser.add_argument("--id-tag")
    parser.add_argument("--samples", type=int)
    parser.add_argument("--repeat", type=int, default=1, help="run the scenario N times")
    parser.add_argument("--timeout", type=float, default=10.0, help="response timeout (s)")
    parser.add_argument(
        "--auto", action="store_true", help="act on accepted remote starts and stops"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log OCPP frames")
    return parser


def print_response(action: str, response: dict[str, Any]) -> None:
    print(json.dumps({"action": action, "response": response}), flush=True)


def build_simulator(args: argparse.Namespace) -> ChargerSimulator16 | ChargerSimulator201:
    if args.ocpp == "2.0.1":
        connectors = ("cType2",) * args.connectors
        return ChargerSimulator201(
            SimulatorConfig201(
                url=args.url,
                charger_id=args.charger_id,
                password=args.password,
                evses=tuple(EvseSpec(n, connectors) for n in range(1, (args.evses or 1) + 1)),
                response_timeout=args.timeout,
                auto_start=args.auto,
                auto_stop=args.auto,
            )
        )
    return ChargerSimulator16(
        SimulatorConfig16(
            url=args.url,
            charger_id=args.charger_id,
            password=args.password,
            connectors=args.connectors,
            response_timeout=args.timeout,
            auto_start=args.auto,
            auto_stop=args.auto,
        )
    )


async def run(args: argparse.Namespace) -> int:
    scenarios = REGISTRIES[args.ocpp]
    options: dict[str, Any] = {"on_response": print_response}
    if args.id_tag is not None:
        options["id_tag"] = args.id_tag
    if args.samples is not None:
        options["samples"] = args.samples
    try:
        async with build_simulator(args) as sim:
            if args.scenario is None:
                await _boot_and_heartbeat(sim, scenarios, options)
            else:
                for _ in range(args.repeat):
                    await scenarios[args.scenario](sim, **options)
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


async def _boot_and_heartbeat(
    sim: ChargerSimulator16 | ChargerSimulator201,
    scenarios: dict[str, Scenario],
    options: dict[str, Any],
) -> None:
    while True:
        result = await scenarios["boot"](sim, **options)
        boot = result.responses[0][1]
        if boot.get("status") == "Accepted":
            break
        if boot.get("status") == "Rejected":
            raise ScenarioError("BootNotification rejected")
        await asyncio.sleep(int(boot.get("interval") or PENDING_RETRY_S))
    interval = int(boot.get("interval") or 0) or _configured_heartbeat_interval(sim)
    while True:
        await asyncio.sleep(interval)
        print_response("Heartbeat", await sim.heartbeat())


def _configured_heartbeat_interval(sim: ChargerSimulator16 | ChargerSimulator201) -> int:
    if isinstance(sim, ChargerSimulator201):
        return int(sim.variables[HEARTBEAT_INTERVAL])
    return int(sim.configuration["HeartbeatInterval"])


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.scenario is not None and args.scenario not in REGISTRIES[args.ocpp]:
        parser.error(f"scenario {args.scenario!r} is not available for OCPP {args.ocpp}")
    if args.evses is not None and args.ocpp != "2.0.1":
        parser.error("--evses is only available for OCPP 2.0.1")
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
