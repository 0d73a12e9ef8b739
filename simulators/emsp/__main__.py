"""CLI of the eMSP simulator.

    python -m simulators.emsp serve --host 127.0.0.1 --port 8100 --country NL --party EMS \\
        --name "Example eMSP"

The other commands drive a running simulator through its control API (``--sim-url``,
default ``http://127.0.0.1:8100``) and print its JSON answer:

    python -m simulators.emsp token-a
    python -m simulators.emsp register --versions-url URL --token TOKEN_A
    python -m simulators.emsp rotate | unregister | state
    python -m simulators.emsp add-token UID [--type RFID] [--whitelist ALLOWED] [--invalid]
    python -m simulators.emsp command START_SESSION --json '{"token": "UID", "location_id": "L1"}'
    python -m simulators.emsp chargingprofile set SESSION_ID --json '{"charging_rate_unit": "A",
        "charging_profile_period": [{"start_period": 0, "limit": 16.0}]}'
    python -m simulators.emsp chargingprofile get SESSION_ID [--duration 900]
    python -m simulators.emsp chargingprofile clear SESSION_ID
    python -m simulators.emsp chargingprofile list
    python -m simulators.emsp pull locations [--date-from ...] [--limit N]
    python -m simulators.emsp faults --module sessions --http 500 [--count 1]
    python -m simulators.emsp faults --clear
    python -m simulators.emsp received [--module M]
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer

from simulators.emsp.server import EmspSimulator
from simulators.emsp.state import SimConfig

DEFAULT_SIM_URL = "http://127.0.0.1:8100"

cli = typer.Typer(
    name="python -m simulators.emsp",
    help="OCPI 2.2.1 eMSP simulator",
    no_args_is_help=True,
    add_completion=False,
)

chargingprofile = typer.Typer(
    help="Send chargingprofiles requests to the CPO (response_url is filled in)",
    no_args_is_help=True,
)
cli.add_typer(chargingprofile, name="chargingprofile")

SimUrl = Annotated[str, typer.Option("--sim-url", help="control API of a running simulator")]


def _control(method: str, sim_url: str, path: str, **kwargs: Any) -> None:
    """Call the control API, print its JSON; exit 1 when it failed."""
    try:
        response = httpx.request(method, f"{sim_url.rstrip('/')}/_sim{path}", timeout=60, **kwargs)
    except httpx.HTTPError as exc:
        typer.echo(f"cannot reach the simulator at {sim_url}: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        body = response.json()
    except ValueError:
        body = {"http_status": response.status_code, "text": response.text}
    print(json.dumps(body, indent=2))
    failed = response.status_code >= 400 or (isinstance(body, dict) and body.get("ok") is False)
    if failed:
        raise typer.Exit(1)


@cli.command()
def serve(
    host: str = "127.0.0.1",
    port: int = 8100,
    country: str = "NL",
    party: str = "EMS",
    name: str = "Example eMSP",
    max_limit: Annotated[int, typer.Option(help="pagination cap")] = 50,
    version: Annotated[
        list[str] | None, typer.Option(help="advertised version (repeatable)")
    ] = None,
    raw_token: Annotated[bool, typer.Option(help="send tokens without base64")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the simulator until Ctrl-C."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = SimConfig(
        country_code=country,
        party_id=party,
        name=name,
        max_limit=max_limit,
        versions=tuple(version) if version else SimConfig().versions,
        encode_token=not raw_token,
    )
    asyncio.run(_serve(EmspSimulator(host=host, port=port, config=config)))


async def _serve(sim: EmspSimulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with sim:
        print(
            json.dumps({"versions_url": sim.versions_url, "control_url": f"{sim.base_url}/_sim"}),
            flush=True,
        )
        await stop.wait()


@cli.command("state")
def state_(sim_url: SimUrl = DEFAULT_SIM_URL) -> None:
    """Peer, tokens, counts of received objects, faults."""
    _control("GET", sim_url, "/state")


@cli.command("token-a")
def token_a(sim_url: SimUrl = DEFAULT_SIM_URL) -> None:
    """Mint a token A for a CPO to register with us."""
    _control("POST", sim_url, "/token-a")


@cli.command()
def register(
    versions_url: Annotated[str, typer.Option(help="the CPO's versions URL")],
    token: Annotated[str, typer.Option(help="token A issued by the CPO")],
    sim_url: SimUrl = DEFAULT_SIM_URL,
) -> None:
    """Register at a CPO (we send the credentials POST)."""
    _control("POST", sim_url, "/register", json={"versions_url": versions_url, "token": token})


@cli.command()
def rotate(sim_url: SimUrl = DEFAULT_SIM_URL) -> None:
    """Update our credentials at the CPO (PUT) with a new token."""
    _control("POST", sim_url, "/rotate")


@cli.command()
def unregister(sim_url: SimUrl = DEFAULT_SIM_URL) -> None:
    """Delete our registration at the CPO."""
    _control("POST", sim_url, "/unregister")


@cli.command("add-token")
def add_token(
    uid: str,
    token_type: Annotated[str, typer.Option("--type")] = "RFID",
    whitelist: str = "ALLOWED",
    invalid: Annotated[bool, typer.Option("--invalid", help="valid=false")] = False,
    allowed: Annotated[str | None, typer.Option(help="force the authorize answer")] = None,
    contract_id: str | None = None,
    no_push: Annotated[bool, typer.Option("--no-push", help="do not PUT it to the CPO")] = False,
    sim_url: SimUrl = DEFAULT_SIM_URL,
) -> None:
    """Add or update one of our tokens and push it to the CPO when registered."""
    body: dict[str, Any] = {
        "uid": uid,
        "type": token_type,
        "whitelist": whitelist,
        "valid": not invalid,
        "push": not no_push,
    }
    if allowed is not None:
        body["allowed"] = allowed
    if contract_id is not None:
        body["contract_id"] = contract_id
    _control("POST", sim_url, "/tokens", json=body)


@cli.command()
def command(
    name: Annotated[str, typer.Argument(help="START_SESSION, STOP_SESSION, ...")],
    json_body: Annotated[str, typer.Option("--json", help="command body (JSON object)")] = "{}",
    sim_url: SimUrl = DEFAULT_SIM_URL,
) -> None:
    """Send a command to the CPO; response_url is filled in."""
    try:
        body = json.loads(json_body)
    except ValueError as exc:
        typer.echo(f"--json is not valid JSON: {exc}", err=True)
        raise typer.Exit(2) from exc
    _control("POST", sim_url, f"/commands/{name}", json=body)


@chargingprofile.command("set")
def chargingprofile_set(
    session_id: str,
    json_body: Annotated[str, typer.Option("--json", help="the ChargingProfile (JSON object)")],
    sim_url: SimUrl = DEFAULT_SIM_URL,
) -> None:
    """PUT a ChargingProfile for a session."""
    try:
        profile = json.loads(json_body)
    except ValueError as exc:
        typer.echo(f"--json is not valid JSON: {exc}", err=True)
        raise typer.Exit(2) from exc
    path = f"/chargingprofiles/{quote(session_id, safe='')}/set"
    _control("POST", sim_url, path, json={"charging_profile": profile})


@chargingprofile.command("get")
def chargingprofile_get(
    session_id: str,
    duration: Annotated[int, typer.Option(help="seconds of profile asked for")] = 900,
    sim_url: SimUrl = DEFAULT_SIM_URL,
) -> None:
    """GET the ActiveChargingProfile of a session (the result arrives later)."""
    path = f"/chargingprofiles/{quote(session_id, safe='')}/get"
    _control("POST", sim_url, path, params={"duration": duration})


@chargingprofile.command("clear")
def chargingprofile_clear(session_id: str, sim_url: SimUrl = DEFAULT_SIM_URL) -> None:
    """DELETE the profile we set for a session."""
    _control("POST", sim_url, f"/chargingprofiles/{quote(session_id, safe='')}/clear")


@chargingprofile.command("list")
def chargingprofile_list(sim_url: SimUrl = DEFAULT_SIM_URL) -> None:
    """Our requests with their results, and the ActiveChargingProfiles the CPO pushed."""
    _control("GET", sim_url, "/chargingprofiles")


@cli.command()
def pull(
    module: str,
    date_from: str | None = None,
    date_to: str | None = None,
    limit: int | None = None,
    sim_url: SimUrl = DEFAULT_SIM_URL,
) -> None:
    """Pull every page of a CPO SENDER module (locations, sessions, cdrs, tariffs)."""
    params = {
        k: v
        for k, v in (("date_from", date_from), ("date_to", date_to), ("limit", limit))
        if v is not None
    }
    _control("GET", sim_url, f"/pull/{module}", params=params)


@cli.command()
def faults(
    module: str = "*",
    method: str = "*",
    http: Annotated[int | None, typer.Option(help="answer this HTTP status")] = None,
    delay: Annotated[float | None, typer.Option(help="answer after N seconds")] = None,
    status_code: Annotated[int | None, typer.Option(help="answer this OCPI status")] = None,
    garbage: Annotated[bool, typer.Option(help="answer HTTP 200 with a non-JSON body")] = False,
    bad_data: Annotated[bool, typer.Option(help="answer success with unexpected data")] = False,
    count: Annotated[int | None, typer.Option(help="only the next N requests")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="remove every fault")] = False,
    sim_url: SimUrl = DEFAULT_SIM_URL,
) -> None:
    """Inject a fault (exactly one of --http, --delay, --status-code, --garbage, --bad-data)
    or --clear them."""
    if clear:
        _control("DELETE", sim_url, "/faults")
        return
    body: dict[str, Any] = {"module": module, "method": method, "count": count}
    for name, value in (("http", http), ("delay", delay), ("status_code", status_code)):
        if value is not None:
            body[name] = value
    if garbage:
        body["garbage"] = True
    if bad_data:
        body["bad_data"] = True
    _control("POST", sim_url, "/faults", json=body)


@cli.command()
def received(
    module: str | None = None,
    sim_url: SimUrl = DEFAULT_SIM_URL,
) -> None:
    """Requests the simulator received (optionally of one module)."""
    _control("GET", sim_url, "/received", params={"module": module} if module else None)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
