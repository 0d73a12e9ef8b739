"""``python -m bench <scenario> [--runs 3] [--smoke]``: run a scenario, write its JSON result
to bench/results/raw/ and (unless ``--smoke`` or ``--no-doc``) its medians to
bench/results/summary.json and the table of docs/benchmarks.md.

``python -m bench report`` regenerates the table from summary.json."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from bench import procs, pyspy, results
from bench.scenarios.base import ScenarioModule
from bench.world import Options

SCENARIOS = ("connections", "ingest", "push", "reads", "cdrs")


def _module(name: str) -> ScenarioModule:
    return cast(ScenarioModule, importlib.import_module(f"bench.scenarios.{name}"))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    sub = parser.add_subparsers(dest="scenario", required=True)
    sub.add_parser("report", help="regenerate the docs/benchmarks.md table from summary.json")
    spy = sub.add_parser("pyspy", help="summarize a raw py-spy recording (--py-spy)")
    spy.add_argument("file", type=Path)
    spy.add_argument("--top", type=int, default=30)
    for name in SCENARIOS:
        module = _module(name)
        scenario = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        scenario.add_argument("--runs", type=int, default=3, help="runs (median reported)")
        scenario.add_argument("--smoke", action="store_true", help="tiny version (seconds)")
        scenario.add_argument("--out-dir", type=Path, default=results.RESULTS / "raw")
        scenario.add_argument(
            "--no-doc", action="store_true", help="do not update summary.json and the doc"
        )
        scenario.add_argument(
            "--no-pin", action="store_true", help="do not pin the bridge to core 0"
        )
        scenario.add_argument(
            "--profile", type=Path, help="run the bridge under cProfile, stats to this path"
        )
        scenario.add_argument("--workdir", type=Path, help="keep databases and logs here")
        scenario.add_argument(
            "--py-spy", type=Path, help="record the bridge with py-spy into this directory"
        )
        scenario.add_argument(
            "--bridge-setting",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="extra bridge setting for the measured runs, e.g. FRAME_LOG_ENABLED=false",
        )
        module.add_arguments(scenario)
    return parser


async def _runs(
    module: ScenarioModule, options: Options, args: argparse.Namespace, template: Path
) -> list[dict[str, Any]]:
    runs = []
    for index in range(options.runs):
        started = time.monotonic()
        run = await module.run_once(options, args, template, index)
        run["wall_s"] = round(time.monotonic() - started, 1)
        runs.append(run)
        sys.stderr.write(f"{module.NAME} run {index + 1}/{options.runs} done\n")
    return runs


def _settings(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs as ``OCPI_BRIDGE_KEY`` environment variables."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--bridge-setting {pair!r}: expected KEY=VALUE")
        settings["OCPI_BRIDGE_" + key.upper().removeprefix("OCPI_BRIDGE_")] = value
    return settings


def run_scenario(args: argparse.Namespace) -> Path:
    """Run one scenario ``args.runs`` times; answer the path of its JSON result."""
    module = _module(args.scenario)
    pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    with tempfile.TemporaryDirectory(prefix=f"bench-{module.NAME}-") as scratch:
        workdir = args.workdir or Path(scratch)
        options = Options(
            runs=args.runs,
            smoke=args.smoke,
            pin=pin,
            profile=args.profile,
            workdir=workdir,
            settings=_settings(args.bridge_setting),
            py_spy=args.py_spy,
        )
        if pin:
            procs.pin_self({1})
        template = module.prepare(options, args)
        runs = asyncio.run(_runs(module, options, args, template))
    summary = module.summarize(runs, args)
    payload = {
        "scenario": module.NAME,
        "command": results.command_line(),
        "smoke": args.smoke,
        "bridge_settings": options.settings,
        "pinned": "bridge on core 0, load generator and eMSP simulator on core 1" if pin else "",
        "machine": results.machine(),
        "medians": summary.medians,
        "headline": summary.headline,
        "target": summary.target,
        "met": summary.met,
        "runs": runs,
    }
    path = results.write_result(module.NAME, payload, args.out_dir)
    if not args.smoke and not args.no_doc and summary.recorded:
        results.update_summary(
            module.NAME,
            {
                "headline": summary.headline,
                "target": summary.target,
                "met": summary.met,
                "medians": summary.medians,
                "runs": len(runs),
                "date": results.today(),
                "command": payload["command"],
                "machine": payload["machine"],
                "result_file": str(path.relative_to(results.ROOT))
                if path.is_relative_to(results.ROOT)
                else str(path),
            },
        )
        results.update_doc()
    sys.stdout.write(summary.headline + "\n")
    verdict = {True: "met", False: "MISSED", None: "n/a"}[summary.met]
    sys.stdout.write(f"target: {summary.target}: {verdict}\n")
    sys.stdout.write(f"result: {path}\n")
    return path


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.scenario == "report":
        results.update_doc()
        return
    if args.scenario == "pyspy":
        sys.stdout.write(pyspy.summarize(args.file, args.top) + "\n")
        return
    run_scenario(args)


if __name__ == "__main__":
    main()
