"""``ocpi-bridge`` command line."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import tomllib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from bridge import event_loop
from bridge.inventory import InventoryError
from bridge.locations import ApplyReport, LocationConflict
from bridge.main import BridgeApp
from bridge.ocpi.models import Role
from bridge.ocpi.wire import TOKEN_PATTERN
from bridge.partners import ExpectedRole, Partner, PartnerStatus
from bridge.push.outbox import OutboxEntry, OutboxState
from bridge.registration import PartnerOperationFailed
from bridge.settings import Settings, SettingsError, load_settings
from bridge.site import SiteFileError, load_site
from csms.domain.model import AuthorizationStatus, RegistrationStatus
from csms.errors import CsmsError
from csms.passwords import generate_password

app = typer.Typer(no_args_is_help=True, add_completion=False, help="OCPP <-> OCPI bridge for CPOs")
chargers_app = typer.Typer(no_args_is_help=True, help="Chargers allowed to connect")
tokens_app = typer.Typer(no_args_is_help=True, help="Local tokens (idTags) of the central system")
partners_app = typer.Typer(no_args_is_help=True, help="OCPI partners (eMSPs, hubs)")
app.add_typer(chargers_app, name="chargers")
app.add_typer(tokens_app, name="tokens")
app.add_typer(partners_app, name="partners")
outbox_app = typer.Typer(no_args_is_help=True, help="Pushes to partners waiting or given up")
app.add_typer(outbox_app, name="outbox")
site_app = typer.Typer(no_args_is_help=True, help="The site file: chargers, tokens, Locations")
locations_app = typer.Typer(no_args_is_help=True, help="OCPI Locations as stored")
app.add_typer(site_app, name="site")
app.add_typer(locations_app, name="locations")
tariffs_app = typer.Typer(no_args_is_help=True, help="The operator's OCPI Tariffs")
app.add_typer(tariffs_app, name="tariffs")

T = TypeVar("T")


def _settings() -> Settings:
    """The configured settings; invalid ones are named and the command exits 2."""
    try:
        return load_settings()
    except SettingsError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


def _run(work: Callable[[BridgeApp], Awaitable[T]]) -> T:
    """Run one operator command against the configured database."""
    settings = _settings()

    async def main() -> T:
        bridge = BridgeApp(settings)
        path = bridge.settings.sqlite_path()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        await bridge.db.create_schema()
        try:
            return await work(bridge)
        finally:
            await bridge.ocpi_client.aclose()
            await bridge.db.dispose()

    try:
        return asyncio.run(main())
    except (CsmsError, PartnerOperationFailed) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command()
def serve(
    site: Annotated[
        Path | None, typer.Option(help="Site file (TOML) with chargers and tokens to create")
    ] = None,
) -> None:
    """Run the OCPP server and the OCPI HTTP API in one process."""
    settings = _settings()
    if site is not None:
        settings = settings.model_copy(update={"site_file": str(site)})
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        loop_factory = event_loop.loop_factory(settings.event_loop)
    except event_loop.EventLoopUnavailable as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        event_loop.run(BridgeApp(settings).run_until_stopped(), loop_factory)
    except (SiteFileError, InventoryError, LocationConflict, CsmsError) as exc:
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

    listed = _run(rows)  # first: nothing printed if the command fails
    typer.echo("charger_id\tauth\tboot\tstate\tocpp\tvendor\tmodel\tlast_seen")
    for row in listed:
        typer.echo(row)


@tokens_app.command("add")
def tokens_add(
    id_tag: Annotated[str, typer.Argument(help="idTag as the charger reads it (<= 20 chars)")],
    status: Annotated[AuthorizationStatus, typer.Option()] = AuthorizationStatus.ACCEPTED,
) -> None:
    """Add or update one of the operator's own tokens (staff cards, free charging)."""
    if len(id_tag) > 20:
        typer.echo("error: OCPP 1.6 idTags are at most 20 characters", err=True)
        raise typer.Exit(2)

    async def put(bridge: BridgeApp) -> None:
        await bridge.authorizer.put_token(id_tag, status=status)

    _run(put)
    typer.echo(f"token {id_tag}: {status.value}")


@tokens_app.command("list")
def tokens_list() -> None:
    """List the operator's own tokens (decided locally, no eMSP involved)."""

    async def rows(bridge: BridgeApp) -> list[str]:
        return [f"{t.id_tag}\t{t.status}" for t in await bridge.authorizer.list_tokens()]

    for row in _run(rows):
        typer.echo(row)


@tokens_app.command("emsp")
def tokens_emsp(
    partner: Annotated[int | None, typer.Option(help="Only this partner's tokens")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many")] = 1000,
) -> None:
    """List the tokens eMSPs gave us (pushed or pulled), oldest change first."""

    async def rows(bridge: BridgeApp) -> tuple[list[str], int]:
        stored, total = await bridge.token_store.page(partner_id=partner, offset=0, limit=limit)
        return [
            f"{s.partner_id}\t{s.token.country_code}/{s.token.party_id}\t{s.token.uid}\t"
            f"{s.token.type.value}\t{s.token.whitelist.value}\t"
            f"{'valid' if s.token.valid else 'INVALID'}\t{s.alias or '-'}\t"
            f"{s.token.last_updated.isoformat()}"
            for s in stored
        ], total

    lines, total = _run(rows)
    typer.echo("partner\tparty\tuid\ttype\twhitelist\tvalid\tocpp16_alias\tlast_updated")
    for line in lines:
        typer.echo(line)
    if total > len(lines):
        typer.echo(f"... {total - len(lines)} more (use --limit)")


@tokens_app.command("pull")
def tokens_pull(
    partner: Annotated[
        int | None, typer.Argument(help="Partner id (default: every partner)")
    ] = None,
) -> None:
    """Pull the token lists of the eMSPs now (changes since the last pull)."""

    async def pull(bridge: BridgeApp) -> list[dict[str, Any]]:
        if partner is None:
            return [r.as_dict() for r in await bridge.tokens.pull_all()]
        return [(await bridge.tokens.pull(await bridge.partners.get(partner))).as_dict()]

    reports = _run(pull)
    for report in reports:
        typer.echo(json.dumps(report))
    if any(r["error"] for r in reports):
        raise typer.Exit(1)


@partners_app.command("add")
def partners_add(
    country: Annotated[str, typer.Option(help="The partner's country code (ISO 3166 alpha-2)")],
    party: Annotated[str, typer.Option(help="The partner's party id (3 characters)")],
    role: Annotated[Role, typer.Option(help="The role it registers with")] = Role.EMSP,
    raw_token: Annotated[
        bool, typer.Option("--raw-token", help="Send our tokens to it without Base64 (pre-2.2)")
    ] = False,
) -> None:
    """Mint a token A for a partner that will register with us, and print what to send it."""
    if len(country) != 2 or not country.isalpha() or len(party) != 3 or not party.isalnum():
        typer.echo("error: --country is 2 letters, --party 3 letters or digits", err=True)
        raise typer.Exit(2)

    async def add(bridge: BridgeApp) -> tuple[Partner, str]:
        expected = ExpectedRole(role=role.value, country_code=country, party_id=party)
        partner = await bridge.partners.add(expected=expected, encode_token=not raw_token)
        return partner, bridge.identity().versions_url

    partner, versions_url = _run(add)
    typer.echo(f"partner {partner.id} added: {partner.expected} may register")
    typer.echo(f"token A:      {partner.token_accept}")
    typer.echo(f"versions URL: {versions_url}")
    typer.echo("Send both to the partner: it registers by POSTing its credentials to us.")


@partners_app.command("register")
def partners_register(
    versions_url: Annotated[str, typer.Option(help="The partner's OCPI versions URL")],
    token: Annotated[str, typer.Option(help="The token A the partner gave us")],
    country: Annotated[
        str | None, typer.Option(help="Expected country code of the partner (checked)")
    ] = None,
    party: Annotated[str | None, typer.Option(help="Expected party id (checked)")] = None,
    role: Annotated[Role, typer.Option(help="Expected role")] = Role.EMSP,
    raw_token: Annotated[
        bool, typer.Option("--raw-token", help="Send tokens without Base64 (pre-2.2 peers)")
    ] = False,
) -> None:
    """Register with a partner (we start the handshake). `ocpi-bridge serve` must be running:
    the partner calls our versions endpoint back during the handshake."""
    if (country is None) != (party is None):
        typer.echo("error: give --country and --party together", err=True)
        raise typer.Exit(2)
    if not re.fullmatch(TOKEN_PATTERN, token):
        typer.echo("error: a credentials token is 1-64 printable ASCII characters", err=True)
        raise typer.Exit(2)
    if not versions_url.startswith(("http://", "https://")):
        typer.echo("error: --versions-url must be an http(s) URL", err=True)
        raise typer.Exit(2)

    async def register(bridge: BridgeApp) -> Partner:
        expected = None
        if country is not None and party is not None:
            expected = ExpectedRole(role=role.value, country_code=country, party_id=party)
        return await bridge.partners.register(
            versions_url, token, expected=expected, encode_token=not raw_token
        )

    partner = _run(register)
    typer.echo(f"partner {partner.id} registered: {partner.label()}")
    for line in _endpoint_lines(partner):
        typer.echo(line)


@partners_app.command("list")
def partners_list() -> None:
    """List partners, their roles and registration state."""
    typer.echo("id\tstatus\tinitiated_by\troles\tversion\tversions_url\tregistered_at")
    for partner in _run(lambda bridge: bridge.partners.list()):
        typer.echo(
            f"{partner.id}\t{partner.status.value}\t{partner.initiated_by.value}\t"
            f"{partner.label()}\t{partner.version or '-'}\t{partner.versions_url or '-'}\t"
            f"{partner.registered_at.isoformat() if partner.registered_at else '-'}"
        )


@partners_app.command("show")
def partners_show(partner_id: Annotated[int, typer.Argument()]) -> None:
    """One partner in detail (token A while it has not registered)."""
    partner = _run(lambda bridge: bridge.partners.get(partner_id))
    typer.echo(f"partner {partner.id}: {partner.status.value} ({partner.label()})")
    typer.echo(f"initiated by: {partner.initiated_by.value}")
    typer.echo(f"versions URL: {partner.versions_url or '-'} (version {partner.version or '-'})")
    if partner.status is PartnerStatus.PENDING:
        typer.echo(f"token A:      {partner.token_accept}")
    for line in _endpoint_lines(partner):
        typer.echo(line)


@partners_app.command("rotate")
def partners_rotate(partner_id: Annotated[int, typer.Argument()]) -> None:
    """Renew the credentials tokens with a registered partner (credentials PUT)."""
    partner = _run(lambda bridge: bridge.partners.rotate(partner_id))
    typer.echo(f"partner {partner.id}: tokens rotated ({partner.label()})")


@partners_app.command("unregister")
def partners_unregister(
    partner_id: Annotated[int, typer.Argument()],
    force: Annotated[
        bool, typer.Option("--force", help="Unregister locally even if the partner fails")
    ] = False,
) -> None:
    """End the registration with a partner (credentials DELETE); its tokens stop working."""
    partner = _run(lambda bridge: bridge.partners.unregister(partner_id, force=force))
    typer.echo(f"partner {partner.id} unregistered ({partner.label()})")


def _endpoint_lines(partner: Partner) -> list[str]:
    return [f"  {e.identifier:<17} {e.role.value:<8} {e.url}" for e in partner.endpoints]


@outbox_app.command("list")
def outbox_list(
    dead: Annotated[bool, typer.Option("--dead", help="Only dead letters")] = False,
    partner: Annotated[int | None, typer.Option(help="Only the rows of this partner")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows")] = 1000,
) -> None:
    """List outbox rows in enqueue order: pushes waiting (PENDING) and given up (DEAD)."""

    async def rows(bridge: BridgeApp) -> list[OutboxEntry]:
        state = OutboxState.DEAD if dead else None
        return await bridge.outbox_service.list_entries(
            state=state, partner_id=partner, limit=limit
        )

    typer.echo(
        "id\tpartner\tstate\tattempts\tmethod\ttarget\tcreated_at\tnext_or_dead_at\tlast_error"
    )
    for entry in _run(rows):
        when = entry.dead_at if entry.dead_at is not None else entry.next_attempt_at
        typer.echo(
            f"{entry.id}\t{entry.partner_id}\t{entry.state.value}\t{entry.attempts}\t"
            f"{entry.method}\t{entry.target}\t{entry.created_at.isoformat()}\t"
            f"{when.isoformat()}\t{entry.last_error or '-'}"
        )


@outbox_app.command("requeue")
def outbox_requeue(
    ids: Annotated[list[int] | None, typer.Argument(help="Ids of dead rows")] = None,
    partner: Annotated[int | None, typer.Option(help="Every dead row of this partner")] = None,
    all_dead: Annotated[bool, typer.Option("--all", help="Every dead row")] = False,
) -> None:
    """Put dead letters back in the queue.

    The running server sends them within its poll interval; a dead status update is sent as
    the current whole object instead."""
    if sum((bool(ids), partner is not None, all_dead)) != 1:
        typer.echo("error: give ids, --partner or --all (one of them)", err=True)
        raise typer.Exit(2)

    async def requeue(bridge: BridgeApp) -> int:
        return await bridge.outbox_service.requeue(
            ids=ids or None, partner_id=partner, everything=all_dead
        )

    typer.echo(f"{_run(requeue)} row(s) requeued")


def main() -> None:
    app()


# --- site and locations ---------------------------------------------------------------------

SiteFile = Annotated[
    Path | None,
    typer.Argument(help="Site file (TOML); default: OCPI_BRIDGE_SITE_FILE", show_default=False),
]


def _site_path(path: Path | None) -> Path:
    if path is not None:
        return path
    configured = _settings().site_file
    if not configured:
        typer.echo("error: give a site file or set OCPI_BRIDGE_SITE_FILE", err=True)
        raise typer.Exit(2)
    return Path(configured)


def _site_run(work: Callable[[BridgeApp], Awaitable[T]]) -> T:
    """Like ``_run``; a site with problems lists them all and exits 1 (nothing changed)."""
    try:
        return _run(work)
    except (SiteFileError, InventoryError, LocationConflict) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc


@site_app.command("check")
def site_check(path: SiteFile = None) -> None:
    """Check a site file against the chargers known to the bridge, changing nothing."""
    site_path = _site_path(path)

    async def check(bridge: BridgeApp) -> tuple[int, int]:
        sites = await bridge.sites.check(load_site(site_path))
        return len(sites), sum(len(s.location.evses or ()) for s in sites)

    locations, evses = _site_run(check)
    typer.echo(f"{site_path}: ok ({locations} location(s), {evses} EVSE(s))")


@site_app.command("reload")
def site_reload(path: SiteFile = None) -> None:
    """Apply a site file: its chargers and tokens are added, its Locations created or updated
    (only the differences are stored and pushed); Locations it no longer lists are removed
    (every EVSE REMOVED). A running bridge pushes the changes within its outbox poll interval."""
    site_path = _site_path(path)

    async def reload(bridge: BridgeApp) -> ApplyReport:
        return await bridge.apply_site(load_site(site_path))

    report = _site_run(reload)
    _print_report(report)
    if report.tariffs is not None:
        typer.echo("tariffs:")
        _print_report(report.tariffs, indent="  ")


def _print_report(report: ApplyReport, indent: str = "") -> None:
    for name, ids in (
        ("created", report.created),
        ("updated", report.updated),
        ("removed", report.removed),
        ("unchanged", report.unchanged),
    ):
        typer.echo(f"{indent}{name}: {', '.join(ids) if ids else '-'}")
    typer.echo(f"{indent}pushes queued: {report.pushes}")


@locations_app.command("list")
def locations_list() -> None:
    """List every Location (published or not) with its EVSEs' statuses."""

    async def rows(bridge: BridgeApp) -> list[str]:
        return [
            f"{s.location.id}\t{'yes' if s.location.publish else 'no'}\t{s.origin}\t"
            + " ".join(f"{e.uid}={e.status.value}" for e in s.location.evses or ())
            + f"\t{s.location.last_updated.isoformat()}"
            for s in await bridge.location_reader.all_locations()
        ]

    typer.echo("location_id\tpublished\torigin\tevses\tlast_updated")
    for row in _run(rows):
        typer.echo(row)


@locations_app.command("push")
def locations_push(
    partner_id: Annotated[int, typer.Argument(help="Partner id (see `partners list`)")],
) -> None:
    """Queue a PUT of every published Location to one partner (a full re-sync)."""

    async def push(bridge: BridgeApp) -> int:
        return await bridge.locations.send_all(await bridge.partners.get(partner_id))

    typer.echo(f"pushes queued: {_run(push)}")


@tariffs_app.command("list")
def tariffs_list() -> None:
    """List every Tariff with where it was described (site file or admin API/CLI)."""

    async def rows(bridge: BridgeApp) -> list[str]:
        return [
            f"{t.id}\t{origin}\t{t.currency}\t{len(t.elements)}\t{t.last_updated.isoformat()}"
            for origin, t in await bridge.sites.tariffs()
        ]

    typer.echo("tariff_id\torigin\tcurrency\telements\tlast_updated")
    for row in _run(rows):
        typer.echo(row)


@tariffs_app.command("show")
def tariffs_show(tariff_id: Annotated[str, typer.Argument()]) -> None:
    """Print one Tariff as the OCPI JSON partners receive."""

    async def find(bridge: BridgeApp) -> dict[str, Any] | None:
        for _origin, tariff in await bridge.sites.tariffs():
            if tariff.id.upper() == tariff_id.upper():
                return tariff.model_dump(mode="json", exclude_none=True)
        return None

    found = _run(find)
    if found is None:
        typer.echo(f"error: unknown tariff {tariff_id!r}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps(found, indent=2))


@tariffs_app.command("put")
def tariffs_put(
    path: Annotated[
        Path,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="A JSON or TOML file with one tariff, written like a [[tariffs]] entry",
        ),
    ],
) -> None:
    """Create or replace one Tariff and queue its PUT to every partner with a tariffs
    RECEIVER. A site reload leaves it alone unless the site file names it."""
    entry = _tariff_entry(path)

    async def put(bridge: BridgeApp) -> ApplyReport:
        return await bridge.sites.put_tariff(entry, str(entry.get("id", "")))

    _print_report(_site_run(put))


@tariffs_app.command("delete")
def tariffs_delete(tariff_id: Annotated[str, typer.Argument()]) -> None:
    """Delete a Tariff that no connector uses any more and queue its DELETE to partners
    (sessions keep the copy taken at their start)."""

    async def delete(bridge: BridgeApp) -> ApplyReport | None:
        return await bridge.sites.remove_tariff(tariff_id)

    report = _site_run(delete)
    if report is None:
        typer.echo(f"error: unknown tariff {tariff_id!r}", err=True)
        raise typer.Exit(1)
    _print_report(report)


def _tariff_entry(path: Path) -> dict[str, Any]:
    """The tariff in ``path``: a JSON object, or a TOML table (top level or one [[tariffs]])."""
    text = path.read_text(encoding="utf-8")
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        typer.echo(f"error: {path}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if isinstance(data, dict) and list(data) == ["tariffs"] and isinstance(data["tariffs"], list):
        data = data["tariffs"][0] if len(data["tariffs"]) == 1 else None
    if not isinstance(data, dict) or not isinstance(data.get("id"), str):
        typer.echo(f"error: {path}: expected one tariff object with an 'id'", err=True)
        raise typer.Exit(1)
    return data
