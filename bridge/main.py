"""Composition root: builds the database, the central system, the HTTP app and the scheduler,
and runs them in one process (``ocpi-bridge serve``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import uvicorn
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bridge.api.platform import OcpiPlatform
from bridge.app import create_app
from bridge.authorization import AuthorizationPolicy, OcpiAuthorizer
from bridge.chargingprofiles import PROJECTED_EVENTS as PROFILE_EVENTS
from bridge.chargingprofiles import ChargingProfilePolicy, ChargingProfileService
from bridge.commands import CommandGrant, CommandPolicy, CommandService
from bridge.event_loop import http_parser, loop_name
from bridge.heap import reclaim, tune_for_serving
from bridge.identity import CpoIdentity
from bridge.locations import PROJECTED_EVENTS as LOCATION_EVENTS
from bridge.locations import ApplyReport, LocationService, PartnerDirectory
from bridge.ocpi.models import ModuleID
from bridge.projector import Applier, Projector
from bridge.push.client import OcpiClient, OcpiReply
from bridge.push.outbox import FullObjectSources, OutboxEntry, RetryPolicy
from bridge.push.worker import OutboxService, OutboxWorker
from bridge.registration import PartnerService
from bridge.sessions import SessionPolicy, SessionService
from bridge.settings import Settings
from bridge.site import Site, load_site
from bridge.sites import SiteOperations
from bridge.store.locations import LocationReader
from bridge.store.outbox import OutboxStore
from bridge.store.partners import PartnerStore
from bridge.store.sessions import SessionReader
from bridge.store.tokens import TokenStore
from bridge.tariffs import TariffService, tariffs_by_ids
from bridge.tokens import TokenService
from csms.clock import utc_now
from csms.domain.model import AuthorizationStatus, RegistrationStatus
from csms.domain.requests import AuthorizationRequest
from csms.errors import ChargerAlreadyExists
from csms.registry import ConnectionRegistry
from csms.server import OcppServer
from csms.services.authorization import LocalTokenAuthorizer
from csms.services.chargers import ChargerService, validate_charger_id
from csms.services.context import Services
from csms.services.transactions import TransactionService
from csms.store.database import Database
from csms.store.events import EventLog
from csms.store.frames import FrameRecorder

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """Uvicorn inside our loop: signals are ours to handle, not uvicorn's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _check_site_entries(site: Site) -> None:
    """Refuse the site's chargers before anything of it is stored (``InvalidChargerId``)."""
    for charger in site.chargers:
        validate_charger_id(charger.charger_id)


class BridgeApp:
    """Everything ``ocpi-bridge serve`` runs, startable and stoppable from tests."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url, pool_size=settings.database_pool_size)
        self.ocpi_client = OcpiClient(timeout_s=settings.ocpi_timeout)
        self.partners = PartnerService(PartnerStore(self.db), self.ocpi_client, self.identity)
        self.location_reader = LocationReader(self.db)
        # Driver authorization: the eMSPs' tokens, then the operator's own (site file, CLI).
        self.authorizer = LocalTokenAuthorizer(self.db)
        self.token_store = TokenStore(self.db)
        self.tokens = TokenService(
            self.token_store,
            partners=self.partners.list,
            client=self.ocpi_client,
            identity=self.identity,
            clock=utc_now,
        )
        self.partners.on_registered(self.tokens.pull_registered, name="tokens")
        self.token_authorizer = OcpiAuthorizer(
            self.token_store,
            partner=self.partners.store.get,
            partners=self.partners.list,
            client=self.ocpi_client,
            identity=self.identity,
            place_of=self.location_reader.place_of,
            operator=self.authorizer,
            grants=self._command_grant,
            policy=AuthorizationPolicy(
                timeout_s=settings.authorization_timeout,
                hub=settings.hub_party(),
                reuse_s=settings.authorization_reuse,
            ),
            clock=utc_now,
        )
        self.chargers = ChargerService(
            self.db,
            heartbeat_interval_s=settings.heartbeat_interval,
            auto_register=settings.auto_register,
        )
        self.transactions = TransactionService(self.db, self.token_authorizer)
        self.services = Services(
            chargers=self.chargers,
            transactions=self.transactions,
            base_report=settings.base_report or None,
        )
        self.registry = ConnectionRegistry()
        self.recorder = FrameRecorder(self.db) if settings.frame_log_enabled else None
        self.ocpp = OcppServer(
            self.services,
            self.registry,
            host=settings.host,
            port=settings.ocpp_port,
            max_frame_bytes=settings.ocpp_max_frame_bytes,
            call_timeout_s=settings.ocpp_call_timeout,
            recorder=self.recorder,
        )
        # Outbox of the pushes to partners; each module registers its FullObjectSource here.
        self.outbox = OutboxStore(self.db)
        self.full_objects = FullObjectSources()
        self.push_worker = OutboxWorker(
            self.outbox,
            self.partners.store,
            self.ocpi_client,
            self.identity,
            RetryPolicy(
                max_attempts=settings.outbox_max_attempts,
                backoff_base_s=settings.outbox_backoff_base,
                backoff_max_s=settings.outbox_backoff_max,
            ),
            concurrency=settings.outbox_concurrency,
            poll_interval_s=settings.outbox_poll_interval,
            full_objects=self.full_objects,
        )
        self.outbox_service = OutboxService(
            self.outbox,
            wake=self.push_worker.wake,
            full_objects=self.full_objects,
            stats=self.push_worker.stats,
        )
        # Locations: the site inventory, live EVSE statuses projected from the event log.
        self.locations = LocationService(
            self.db,
            PartnerDirectory(self.partners.list),
            coalesce=settings.outbox_coalesce,
            on_enqueued=self.push_committed,
            clock=utc_now,
        )
        self.full_objects.register("locations", self.locations)
        self.partners.on_registered(self.locations.send_all, name="locations")
        # Tariffs, Sessions and CDRs: tariffs from the site file; sessions projected from the
        # transaction events (the "sessions" applier of the projector below).
        self.tariffs = TariffService(
            self.db,
            partners=self.partners.list,
            identity=self.identity,
            on_enqueued=self.push_committed,
            clock=utc_now,
        )
        self.full_objects.register("tariffs", self.tariffs)
        self.partners.on_registered(self.tariffs.send_all, name="tariffs")
        self.session_reader = SessionReader(self.db)
        self.sessions = SessionService(
            identity=self.identity,
            tariffs=tariffs_by_ids,
            policy=SessionPolicy(
                currency=settings.currency,
                patch_interval_s=settings.session_patch_interval,
                pending_timeout_s=settings.command_grant_window,
            ),
            clock=utc_now,
        )
        self.full_objects.register("sessions", self.sessions)
        self.push_worker.on_delivered(ModuleID.CDRS, self._cdr_delivered)
        # Commands: eMSP commands sent to the chargers, their results back through the outbox.
        self.commands = CommandService(
            self.db,
            chargers=self.registry,
            locations=self.location_reader,
            sessions=self.session_reader,
            opened=self.sessions,
            policy=CommandPolicy(
                call_timeout_s=settings.ocpp_call_timeout,
                margin_s=settings.command_result_margin,
                grant_window_s=settings.command_grant_window,
            ),
            on_enqueued=self.push_committed,
            clock=utc_now,
        )
        # Charging profiles: eMSP limits on their sessions, results through the outbox.
        self.charging_profiles = ChargingProfileService(
            self.db,
            chargers=self.registry,
            sessions=self.session_reader,
            partners=self.partners.store.get,
            policy=ChargingProfilePolicy(
                call_timeout_s=settings.ocpp_call_timeout,
                margin_s=settings.command_result_margin,
                stack_level=settings.charging_profile_stack_level,
                min_interval_s=settings.charging_profile_min_interval,
                active_profile_duration_s=settings.charging_profile_active_duration,
            ),
            on_enqueued=self.push_committed,
            clock=utc_now,
        )
        # One reader of the event log for the projections, each after its own offset: live EVSE
        # statuses, Sessions and CDRs, and limit changes on sessions with an eMSP profile
        # (-> ActiveChargingProfile PUTs).
        self.projector = Projector(
            self.db,
            EventLog(self.db),
            [
                Applier(
                    "ocpi",
                    self.locations.project,
                    self.push_committed,
                    events=LOCATION_EVENTS,
                ),
                Applier("sessions", self.sessions.project, self.push_committed),
                Applier(
                    "chargingprofiles",
                    self.charging_profiles.project,
                    self.charging_profiles.wake,
                    events=PROFILE_EVENTS,
                ),
            ],
        )
        self.sites = SiteOperations(
            directory=self.chargers,
            locations=self.locations,
            tariffs=self.tariffs,
            reader=self.location_reader,
            register_entries=self._register_site_entries,
            check_entries=_check_site_entries,
            identity=self.identity,
            site_file=settings.site_file,
            clock=utc_now,
        )
        self.scheduler = AsyncIOScheduler(timezone="UTC")
        self._http: uvicorn.Server | None = None
        self._http_parser = http_parser()
        self._http_task: asyncio.Task[None] | None = None

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        log.info(
            "event loop %s, HTTP parser %s",
            loop_name(asyncio.get_running_loop()),
            self._http_parser,
        )
        path = self.settings.sqlite_path()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        await self.db.create_schema()
        # This process holds every connection: whatever the database says from a previous run
        # (a crash, a kill -9), no charger is connected before it connects to us.
        await self.chargers.mark_all_disconnected()
        # Catch up on events a previous run committed but did not project, then apply the site
        # file (only its differences are stored and pushed).
        await self.projector.catch_up()
        if self.settings.site_file:
            await self.apply_site(load_site(Path(self.settings.site_file)))
        self.projector.start()
        if self.recorder is not None:
            self.recorder.start()
        await self.charging_profiles.recover()  # requests a previous run left unanswered
        self.charging_profiles.start()  # ActiveChargingProfile updates, those left too
        await self.ocpp.start()
        await self._start_http()
        self.push_worker.start()
        # Registration steps (every Location queued for a new partner...) a previous run left.
        await self.partners.resume_follow_ups()
        # Commands a previous run left unanswered get TIMEOUT now, later ones at their deadline.
        self.commands.start(interval_s=max(0.5, min(30.0, self.settings.command_result_margin)))
        self._schedule_jobs()
        if not self.settings.public_url and self.settings.host not in ("127.0.0.1", "localhost"):
            log.warning(
                "OCPI_BRIDGE_PUBLIC_URL is not set: partners are told to call %s, set it to the "
                "URL they can reach",
                self.identity().versions_url,
            )
        log.info(
            "ocpi-bridge ready: OCPP ws://%s:%d/ocpp/{charger_id}, HTTP http://%s:%d",
            self.settings.host,
            self.ocpp.port,
            self.settings.host,
            self.http_port,
        )

    async def stop(self) -> None:
        """Stop every part, each even if an earlier one failed; the frame log and the database
        are closed last."""
        try:
            await self.partners.stop()
            await self.projector.stop()
            await self.tokens.stop()
            await self.commands.stop()
            await self.charging_profiles.stop()
            await self.push_worker.stop()
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            await self.ocpp.stop()
            if self._http is not None and self._http_task is not None:
                self._http.should_exit = True
                self._http = None
                await self._http_task
        finally:
            try:
                await self.ocpi_client.aclose()
                if self.recorder is not None:
                    await self.recorder.stop()
            finally:
                await self.db.dispose()
                self.partners.store.close()

    async def run_until_stopped(self) -> None:
        await self.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        self._tune_heap()  # last: its log line tells that the process is serving
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            await self.stop()

    @property
    def http_port(self) -> int:
        if self._http is None or not self._http.servers:
            raise RuntimeError("HTTP server not started")
        port: int = self._http.servers[0].sockets[0].getsockname()[1]
        return port

    def identity(self) -> CpoIdentity:
        """The CPO in OCPI; its URLs use the bound HTTP port once the server runs."""
        settings = self.settings
        port = self.http_port if self._http is not None and self._http.started else None
        return CpoIdentity(
            country_code=settings.country_code.upper(),
            party_id=settings.party_id.upper(),
            name=settings.business_name,
            website=settings.business_website,
            base_url=settings.base_url(port),
        )

    # --- parts ---------------------------------------------------------------------------

    async def apply_site(self, site: Site) -> ApplyReport:
        """Check the whole site, create its chargers and tokens (existing chargers are left as
        they are) and apply its Locations."""
        return await self.sites.apply(site)

    async def _register_site_entries(self, site: Site) -> None:
        """Create the site's chargers and tokens; existing chargers are left as they are."""
        for charger in site.chargers:
            with contextlib.suppress(ChargerAlreadyExists):
                await self.chargers.register(
                    charger.charger_id,
                    password=charger.password,
                    allow_no_auth=charger.allow_no_auth,
                    boot_status=RegistrationStatus(charger.boot_status),
                )
        for token in site.tokens:
            await self.authorizer.put_token(
                token.id_tag,
                status=AuthorizationStatus(token.status),
                parent_id_tag=token.parent_id_tag,
            )

    def http_platform(self) -> OcpiPlatform:
        """What the HTTP routers use from this bridge."""
        return OcpiPlatform(
            partners=self.partners,
            max_page_size=self.settings.ocpi_page_size,
            admin_token=self.settings.admin_token,
            outbox=self.outbox_service,
            locations=self.location_reader,
            sites=self.sites,
            tokens=self.tokens,
            sessions=self.session_reader,
            tariffs=self.tariffs,
            commands=self.commands,
            charging_profiles=self.charging_profiles,
        )

    async def health(self) -> dict[str, Any]:
        return {"status": "ok", "connected_chargers": len(self.registry.connected_ids())}

    async def _start_http(self) -> None:
        config = uvicorn.Config(
            create_app(self.health, self.http_platform()),
            host=self.settings.host,
            port=self.settings.http_port,
            http=self._http_parser,
            log_config=None,
            lifespan="off",
        )
        self._http = _EmbeddedServer(config)
        self._http_task = asyncio.create_task(self._serve_http(), name="http-server")
        while not self._http.started:
            if self._http_task.done():
                self._http_task.result()
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.01)

    async def _serve_http(self) -> None:
        assert self._http is not None
        try:
            await self._http.serve()
        except Exception:
            log.exception("HTTP server failed")
            raise

    async def _cdr_delivered(self, entry: OutboxEntry, reply: OcpiReply) -> None:
        """Keep where the eMSP stored a CDR (the ``Location`` header of its POST answer)."""
        location = reply.headers.get("Location")
        cdr_id = entry.body.get("id")
        if location and isinstance(cdr_id, str):
            await self.session_reader.save_cdr_location(cdr_id, location)
        elif not location:
            log.warning(
                "partner %d stored CDR %s without a Location header", entry.partner_id, cdr_id
            )

    def _tune_heap(self) -> None:
        """The serving process's garbage collection (``bridge.heap``)."""
        freeze = self.settings.gc_freeze_survivors
        tune_for_serving(freeze_survivors=freeze)
        if freeze:
            self.scheduler.add_job(
                self._reclaim_heap,
                "interval",
                seconds=self.settings.gc_reclaim_interval,
                id="heap-reclaim",
                coalesce=True,
                max_instances=1,
            )

    async def _reclaim_heap(self) -> None:
        # A coroutine, so that the scheduler runs it on the event loop (a plain function
        # would go to its thread pool): the pause is the loop's own, between two callbacks.
        reclaim()

    async def _command_grant(self, request: AuthorizationRequest) -> CommandGrant | None:
        return await self.commands.grant_for(request)

    def push_committed(self) -> None:
        """Call after a transaction that enqueued pushes has committed: the worker looks now."""
        self.push_worker.wake()

    def _schedule_jobs(self) -> None:
        timeout = self.settings.liveness_timeout
        self.scheduler.add_job(
            self._sweep_offline,
            "interval",
            seconds=max(0.5, min(30.0, timeout / 4)),
            id="liveness-sweep",
            coalesce=True,
            max_instances=1,
        )
        # Backstop: the worker wakes on commits and polls; this catches anything it missed.
        self.scheduler.add_job(
            self.push_worker.drain_once, "interval", minutes=1, id="outbox-drain", coalesce=True
        )
        # Registration steps that failed, retried when due.
        self.scheduler.add_job(
            self.partners.run_due_follow_ups,
            "interval",
            minutes=1,
            id="partner-registration-steps",
            coalesce=True,
            max_instances=1,
        )
        if self.settings.token_pull_interval > 0:
            self.scheduler.add_job(
                self.tokens.pull_all,
                "interval",
                seconds=self.settings.token_pull_interval,
                id="token-pull",
                coalesce=True,
                max_instances=1,
            )
        self.scheduler.add_job(
            self.charging_profiles.expire,
            "interval",
            seconds=max(1.0, min(30.0, self.settings.command_result_margin / 2)),
            id="charging-profile-deadlines",
            coalesce=True,
            max_instances=1,
        )
        self.scheduler.add_job(
            self.expire_waiting_sessions,
            "interval",
            seconds=30,
            id="waiting-sessions",
            coalesce=True,
            max_instances=1,
        )
        self.scheduler.add_job(
            self._purge_decisions, "interval", hours=6, id="purge-authorizations", coalesce=True
        )
        if self.recorder is not None and self.settings.frame_retention_days > 0:
            self.scheduler.add_job(
                self._purge_frames, "interval", hours=6, id="purge-ocpp-frames", coalesce=True
            )
        self.scheduler.start()

    async def _sweep_offline(self) -> None:
        await self.locations.sweep_offline(self.settings.liveness_timeout)

    async def expire_waiting_sessions(self) -> None:
        """PENDING sessions of commands no transaction followed, reservations past expiry."""
        async with self.db.transaction() as uow:
            pushes = await self.sessions.expire_waiting(uow.session)
        if pushes:
            self.push_committed()

    async def _purge_decisions(self) -> None:
        days = self.settings.authorization_retention_days
        deleted = await self.token_store.purge_decisions(utc_now() - timedelta(days=days))
        if deleted:
            log.info("purged %d authorization decisions older than %d days", deleted, days)

    async def _purge_frames(self) -> None:
        assert self.recorder is not None
        deleted = await self.recorder.purge_older_than(self.settings.frame_retention_days)
        if deleted:
            log.info(
                "purged %d OCPP frames older than %d days",
                deleted,
                self.settings.frame_retention_days,
            )
