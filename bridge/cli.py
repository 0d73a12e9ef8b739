"""``ocpi-bridge`` command line."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from bridge.main import BridgeApp
from bridge.settings import load_settings
from bridge.site import SiteFileError
from csms.domain.model import AuthorizationStatus, RegistrationStatus
from csms.errors import CsmsError
from csms.passwords import generate_password

app = typer.Typer(no_args_is_help=True, add_completion=False, help="OCPP <-> OCPI bridge for CPOs")
chargers_app = typer.Typer(no_args_is_help=True, help="Chargers allowed to connect")
tokens_app = typer.Typer(no_args_is_help=True, help="Local tokens (idTags) of the central system")
app.add_typer(chargers_app, name="chargers")
app.add_typer(tokens_app, name="tokens")

T = TypeVar("T")


def _run(work: Callable[[BridgeApp], Awaitable[T]]) -> T:
    """Run one operator command against the configured database."""

    async def main() -> T:
        bridge = BridgeApp(load_settings())
        path = bridge.settings.sqlite_path()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        await bridge.db.create_schema()
        try:
            return await work(bridge)
        finally:
            await bridge.db.dispose()

    try:
        return asyncio.run(main())
    except CsmsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def serve(
    site: Annotated[
        Path | None, typer.Option(help="Site file (TOML) with chargers and tokens to create")
    ] = None,
) -> None:
    """Run the OCPP server and the OCPI HTTP API in one process."""
    settings = load_settings()
    if site is not None:
        settings = settings.model_copy(update={"site_file": str(site)})
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(BridgeApp(settings).run_until_stopped())
    except (SiteFileError, CsmsError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@chargers_app.command("add")
def chargers_add(
    charger_id: Annotated[str, typer.Argument(help="The charger's OCPP identity")],
    password: Annotated[
        str | None, typer.Option(help="Basic auth password (generated when omitted)")
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Allow this charger without a password (profile 0)")
    ] = False,
    boot_status: Annotated[
        RegistrationStatus, typer.Option(help="Answer to its BootNotification")
    ] = RegistrationStatus.ACCEPTED,
) -> None:
    """Allow a charger to connect."""
    if no_auth and password:
        typer.echo("error: --password and --no-auth exclude each other", err=True)
        raise typer.Exit(2)
    if not no_auth and password is None:
        password = generate_password()
        typer.echo(f"generated password: {password}")
    if password is not None and not 16 <= len(password) <= 40:
        typer.echo("error: OCPP passwords are 16 to 40 characters", err=True)
        raise typer.Exit(2)

    async def add(bridge: BridgeApp) -> None:
        await bridge.chargers.register(
            charger_id, password=password, allow_no_auth=no_auth, boot_status=boot_status
        )

    _run(add)
    typer.echo(f"charger {charger_id} added (auth: {'none' if no_auth else 'basic'})")


@chargers_app.command("list")
def chargers_list() -> None:
    """List chargers and their connection state."""

    async def rows(bridge: BridgeApp) -> list[str]:
        return [
            f"{c.charger_id}\t{c.auth}\t{c.boot_status}\t"
            f"{'online' if c.connected else 'offline'}\t{c.ocpp_version or '-'}\t"
            f"{c.vendor or '-'}\t{c.model or '-'}\t"
            f"{c.last_seen_at.isoformat() if c.last_seen_at else '-'}"
            for c in await bridge.chargers.list_chargers()
        ]

    typer.echo("charger_id\tauth\tboot\tstate\tocpp\tvendor\tmodel\tlast_seen")
    for row in _run(rows):
        typer.echo(row)


@tokens_app.command("add")
def tokens_add(
    id_tag: Annotated[str, typer.Argument(help="idTag as the charger reads it (<= 20 chars)")],
    status: Annotated[AuthorizationStatus, typer.Option()] = AuthorizationStatus.ACCEPTED,
) -> None:
    """Add or update a local token."""
    if len(id_tag) > 20:
        typer.echo("error: OCPP 1.6 idTags are at most 20 characters", err=True)
        raise typer.Exit(2)

    async def put(bridge: BridgeApp) -> None:
        await bridge.authorizer.put_token(id_tag, status=status)

    _run(put)
    typer.echo(f"token {id_tag}: {status.value}")


@tokens_app.command("list")
def tokens_list() -> None:
    """List local tokens."""

    async def rows(bridge: BridgeApp) -> list[str]:
        return [f"{t.id_tag}\t{t.status}" for t in await bridge.authorizer.list_tokens()]

    for row in _run(rows):
        typer.echo(row)


def main() -> None:
    app()
