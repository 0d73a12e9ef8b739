"""Credentials and registration with OCPI partners, both directions (reference section 2).

Inbound (the partner registers with us, we minted token A): ``accept_registration`` (POST),
``accept_update`` (PUT), ``accept_unregistration`` (DELETE), ``credentials_for`` (GET).
Outbound (we register with a partner that gave us its token A): ``register``, ``rotate``,
``unregister``.

No HTTP call to a partner is made while the database is locked; every state change is
compare-and-set on the token the request was authenticated with, so a request racing another
one changes nothing.

After a registration (either direction) the ``on_registered`` steps run (queue every Location
and Tariff for the new partner, pull its tokens): stored as follow-up rows in the registration's
own transaction, run in a task of their own after the answer (an eMSP's credentials POST is
answered first: queueing 10,000 Locations takes longer than its request timeout). A step that
fails is logged and retried with backoff by ``run_due_follow_ups`` (a scheduler job); steps a
stopped or crashed process left are run again by ``resume_follow_ups`` at start-up.

``authenticate`` (every OCPI request) caches token -> partner for as long as the partners'
generation (``PartnerStore.generation``, bumped by every write to a partner, in any process)
has not changed: a rotated, updated or unregistered token is never accepted from the cache,
and a new one is always looked up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

from pydantic import TypeAdapter, ValidationError

from bridge.errors import InvalidParameters, MethodNotAllowed, PeerUnusable
from bridge.identity import CpoIdentity
from bridge.ocpi.models import (
    Credentials,
    CredentialsRole,
    Endpoint,
    ModuleID,
    Version,
    VersionDetails,
)
from bridge.ocpi.wire import VERSION, OcpiStatus, token_candidates
from bridge.partners import ExpectedRole, FollowUp, Partner, PartnerStatus
from bridge.push.client import OcpiClient
from bridge.store.partners import GenerationCache, PartnerChanged, PartnerStore, RoleTaken
from csms.clock import utc_now

log = logging.getLogger(__name__)

_VERSIONS = TypeAdapter(list[Version])


class FailureKind(StrEnum):
    NOT_FOUND = "not-found"  # no such partner
    STATE = "state"  # the partner is not in a state that allows the operation
    PEER = "peer"  # the partner refused, failed or could not be reached


class PartnerOperationFailed(Exception):
    """An operator's request (register, rotate, unregister) that did not complete; the partner
    state is as it was before."""

    def __init__(self, message: str, kind: FailureKind = FailureKind.PEER) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Caller:
    """An authenticated OCPI request: the partner and the token it presented (decoded)."""

    partner: Partner
    token: str

    @property
    def registered(self) -> bool:
        return self.partner.status is PartnerStatus.REGISTERED


@dataclass(frozen=True)
class PeerApi:
    version: str
    versions_url: str
    endpoints: tuple[Endpoint, ...]


RegisteredCallback = Callable[[Partner], Awaitable[object]]

_CALLERS_MAX = 1024  # cached Authorization headers (cleared when full)


@dataclass(frozen=True, kw_only=True)
class FollowUpPolicy:
    """When a failed follow-up step is tried again: ``retry_base_s`` doubled per failed attempt,
    at most ``retry_max_s``; never given up (the step is what makes a new partner complete).
    ``lease_s``: a new step is due for others (the periodic job, another process) only this
    long after the registration, the registering process runs it at once."""

    retry_base_s: float = 30.0
    retry_max_s: float = 3600.0
    lease_s: float = 300.0

    def delay_after(self, attempts: int) -> float:
        return min(self.retry_max_s, self.retry_base_s * 2.0 ** max(0, min(attempts - 1, 30)))


def mint_token() -> str:
    """A credentials token: 43 URL-safe characters (printable ASCII, within string(64))."""
    return secrets.token_urlsafe(32)


class PartnerService:
    def __init__(
        self,
        store: PartnerStore,
        client: OcpiClient,
        identity: Callable[[], CpoIdentity],
        clock: Callable[[], datetime] = utc_now,
        follow_up_policy: FollowUpPolicy | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self._identity = identity
        self._clock = clock
        self.follow_up_policy = follow_up_policy or FollowUpPolicy()
        self._registered_listeners: dict[str, RegisteredCallback] = {}
        self._follow_up_tasks: dict[int, asyncio.Task[None]] = {}
        self._stopping = False
        self._callers: GenerationCache[str, Caller] = GenerationCache(
            store.generation, max_size=_CALLERS_MAX
        )

    def on_registered(self, callback: RegisteredCallback, *, name: str | None = None) -> None:
        """Run ``callback`` after a partner completed a registration (either direction), e.g.
        to send it every object it should receive. ``name`` (default: the callback's qualified
        name) identifies the step in the database: keep it stable across versions. Each step
        runs until it succeeds once; it must be safe to run again (a step interrupted by a
        stop runs again after the restart)."""
        step = name or getattr(callback, "__qualname__", None) or repr(callback)
        if step in self._registered_listeners:
            raise ValueError(f"a registration step named {step!r} exists already")
        self._registered_listeners[step] = callback

    # --- follow-up steps of a registration ----------------------------------------------

    def _follow_up(self, partner_id: int) -> asyncio.Task[None] | None:
        """The task running the partner's pending steps: the one running, else a new one
        (none once stopping: the steps stay stored for the next start)."""
        task = self._follow_up_tasks.get(partner_id)
        if task is not None or self._stopping:
            return task
        task = asyncio.create_task(
            self._run_follow_ups(partner_id), name=f"ocpi-partner-{partner_id}-registered"
        )
        self._follow_up_tasks[partner_id] = task
        task.add_done_callback(partial(self._follow_up_ended, partner_id))
        return task

    def _follow_up_ended(self, partner_id: int, task: asyncio.Task[None]) -> None:
        if self._follow_up_tasks.get(partner_id) is task:
            del self._follow_up_tasks[partner_id]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error(
                "after registering OCPI partner %d: the follow-up steps failed; they stay "
                "stored and are tried again later",
                partner_id,
                exc_info=exc,
            )

    async def _run_follow_ups(self, partner_id: int) -> None:
        steps = {s.step: s for s in await self.store.follow_ups(partner_id=partner_id)}
        if not steps:
            return
        partner = await self.store.get(partner_id)
        if partner is None or not partner.registered:
            dropped = await self.store.drop_follow_ups(partner_id)
            log.info(
                "OCPI partner %d is no longer registered: %d registration step(s) dropped",
                partner_id,
                dropped,
            )
            return
        for name, callback in self._registered_listeners.items():
            step = steps.pop(name, None)
            if step is None:
                continue
            try:
                await callback(partner)
            except Exception as exc:
                # The registration stands; the step is tried again later.
                attempts = step.attempts + 1
                delay = self.follow_up_policy.delay_after(attempts)
                log.exception(
                    "after registering OCPI partner %d: step %r failed (attempt %d), "
                    "retrying in %.0fs",
                    partner_id,
                    name,
                    attempts,
                    delay,
                )
                await self.store.follow_up_failed(
                    partner_id,
                    name,
                    attempts=attempts,
                    error=f"{type(exc).__name__}: {exc}",
                    next_attempt_at=self._clock() + timedelta(seconds=delay),
                )
            else:
                await self.store.follow_up_done(partner_id, name)
        for name in steps:
            log.warning(
                "OCPI partner %d: registration step %r is unknown to this version; dropped",
                partner_id,
                name,
            )
            await self.store.follow_up_done(partner_id, name)

    async def resume_follow_ups(self) -> int:
        """At start-up: run every stored step (left by a stop, a crash or another process),
        in the background; the number of partners concerned."""
        return len(self._start_follow_ups(await self.store.follow_ups()))

    async def run_due_follow_ups(self) -> None:
        """The periodic job: run the steps due now (failed ones whose retry is due, or left by
        another process) and wait for them."""
        tasks = self._start_follow_ups(await self.store.follow_ups(due_at=self._clock()))
        if tasks:
            await asyncio.gather(*(asyncio.shield(task) for task in tasks))

    def _start_follow_ups(self, steps: Sequence[FollowUp]) -> list[asyncio.Task[None]]:
        tasks: list[asyncio.Task[None]] = []
        for partner_id in dict.fromkeys(step.partner_id for step in steps):
            task = self._follow_up(partner_id)
            if task is not None:
                tasks.append(task)
        return tasks

    async def join_follow_ups(self) -> None:
        """Wait until the steps running now have ended (for tests and orderly hand-overs);
        their failures are logged by the tasks themselves."""
        while tasks := list(self._follow_up_tasks.values()):
            await asyncio.gather(*(asyncio.shield(t) for t in tasks), return_exceptions=True)
            await asyncio.sleep(0)  # let the tasks' done callbacks run

    async def stop(self) -> None:
        """Cancel the steps running (they stay stored and run again at the next start)."""
        self._stopping = True
        tasks = list(self._follow_up_tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
            log.info(
                "%d OCPI partner registration follow-up(s) interrupted; they run again at the "
                "next start",
                len(tasks),
            )
        self._callers.clear()

    def _follow_up_steps(self) -> dict[str, Any]:
        """What ``store_credentials`` needs to store this registration's steps."""
        lease = timedelta(seconds=self.follow_up_policy.lease_s)
        return {
            "follow_ups": list(self._registered_listeners),
            "follow_up_at": self._clock() + lease,
        }

    @property
    def identity(self) -> CpoIdentity:
        return self._identity()

    # --- authentication ------------------------------------------------------------------

    async def authenticate(self, authorization: str | None) -> Caller | None:
        """The caller behind an ``Authorization`` header: raw token first, then its Base64
        decoding (2.2.1 peers encode, older ones do not). Answered from the cache while the
        partners' generation is the one the entry was read at (see the module docstring)."""
        if not authorization:
            return None
        cached, generation = self._callers.lookup(authorization)
        if cached is not None:
            return cached
        found = await self.store.find_by_token(token_candidates(authorization))
        if found is None:
            return None
        caller = Caller(*found)
        self._callers.keep(authorization, caller, generation)
        return caller

    # --- operator actions ----------------------------------------------------------------

    async def add(self, *, expected: ExpectedRole | None, encode_token: bool = True) -> Partner:
        """A partner that will register with us: mints its token A."""
        return await self.store.add_pending(
            token_a=mint_token(), expected=expected, encode_token=encode_token, now=self._clock()
        )

    async def list(self) -> list[Partner]:
        return await self.store.list_all()

    async def get(self, partner_id: int) -> Partner:
        partner = await self.store.get(partner_id)
        if partner is None:
            raise PartnerOperationFailed(f"no partner {partner_id}", FailureKind.NOT_FOUND)
        return partner

    # --- inbound: the partner calls our credentials endpoint -----------------------------

    def credentials_for(self, caller: Caller) -> Credentials:
        return self.identity.credentials(caller.token)

    @staticmethod
    def check_can_register(caller: Caller) -> None:
        """Credentials POST is for a partner holding token A (HTTP 405 otherwise)."""
        if caller.partner.status is not PartnerStatus.PENDING:
            raise MethodNotAllowed(
                "already registered: use PUT to update credentials or DELETE to unregister"
            )

    @staticmethod
    def check_registered(caller: Caller) -> None:
        """Credentials PUT and DELETE are for a registered partner (HTTP 405 otherwise)."""
        if not caller.registered:
            raise MethodNotAllowed("not registered: POST credentials first")

    async def accept_registration(self, caller: Caller, body: Credentials) -> Credentials:
        """POST: the partner registers with token A and gives us its token B."""
        self.check_can_register(caller)
        await self._check_roles(caller.partner, body.roles)
        api = await self.discover(body.url, body.token, encode_token=caller.partner.encode_token)
        token_c = mint_token()
        await self._store(
            caller,
            PartnerStatus.PENDING,
            token_accept=token_c,
            body=body,
            api=api,
            on_changed=MethodNotAllowed("already registered by a concurrent request"),
            follow_ups=True,
        )
        log.info("OCPI partner %d registered: %s", caller.partner.id, _roles_text(body.roles))
        # Answered now; the steps (every Location queued...) run after, in their own task.
        self._follow_up(caller.partner.id)
        return self.identity.credentials(token_c)

    async def accept_update(self, caller: Caller, body: Credentials) -> Credentials:
        """PUT: new token for us to present, endpoints fetched again, a new token for them."""
        self.check_registered(caller)
        await self._check_roles(caller.partner, body.roles)
        api = await self.discover(body.url, body.token, encode_token=caller.partner.encode_token)
        token_c = mint_token()
        await self._store(
            caller,
            PartnerStatus.REGISTERED,
            token_accept=token_c,
            body=body,
            api=api,
            on_changed=MethodNotAllowed("credentials changed by a concurrent request"),
        )
        log.info("OCPI partner %d updated its credentials", caller.partner.id)
        return self.identity.credentials(token_c)

    async def accept_unregistration(self, caller: Caller) -> None:
        """DELETE: the partner's token for us is invalid from now on, ours for it too."""
        self.check_registered(caller)
        try:
            await self.store.unregister(
                caller.partner.id, authenticated_with=caller.token, now=self._clock()
            )
        except PartnerChanged as exc:
            raise MethodNotAllowed("credentials changed by a concurrent request") from exc
        log.info("OCPI partner %d unregistered itself", caller.partner.id)

    async def _check_roles(self, partner: Partner, roles: Sequence[CredentialsRole]) -> None:
        """The roles a partner registers: unique, within the party its token A was issued for
        (a partner cannot speak for parties the operator did not approve), and no party of
        another registered partner."""
        keys = {role.key() for role in roles}
        if len(keys) != len(roles):
            raise InvalidParameters("roles: each (role, country_code, party_id) must be unique")
        expected = partner.expected
        if expected is not None:
            party = (expected.country_code.upper(), expected.party_id.upper())
            if expected.key() not in keys or any(key[1:] != party for key in keys):
                raise InvalidParameters(
                    f"roles: this token was issued for {expected}, "
                    f"the credentials list {_roles_text(roles)}"
                )
        taken = await self.store.owner_of_party(roles, except_partner=partner.id)
        if taken is not None:
            raise InvalidParameters(
                f"roles: {taken.country_code}/{taken.party_id} "
                "is already registered by another partner"
            )

    async def _store(
        self,
        caller: Caller,
        from_status: PartnerStatus,
        *,
        token_accept: str,
        body: Credentials,
        api: PeerApi,
        on_changed: Exception,
        follow_ups: bool = False,
    ) -> Partner:
        try:
            return await self.store.store_credentials(
                caller.partner.id,
                authenticated_with=caller.token,
                from_status=from_status,
                token_accept=token_accept,
                token_present=body.token,
                versions_url=body.url,
                version=api.version,
                endpoints=api.endpoints,
                roles=body.roles,
                now=self._clock(),
                **(self._follow_up_steps() if follow_ups else {}),
            )
        except RoleTaken as exc:
            raise InvalidParameters(f"roles: {exc}") from exc
        except PartnerChanged as exc:
            raise on_changed from exc

    # --- discovery -----------------------------------------------------------------------

    async def discover(self, versions_url: str, token: str, *, encode_token: bool) -> PeerApi:
        """GET the partner's versions and 2.2.1 details. ``PeerUnusable`` with 3001 when they
        cannot be fetched or read, 3002 when 2.2.1 is not offered, 3003 when the details lack a
        credentials endpoint."""
        reply = await self.client.request(
            "GET", versions_url, token=token, encode_token=encode_token
        )
        if not reply.ok:
            raise PeerUnusable(
                OcpiStatus.CLIENT_API_UNUSABLE,
                f"could not get versions from {versions_url}: {reply.summary()}",
                f"could not get versions: {reply.describe()}",
            )
        versions = _parse(_VERSIONS, reply.data, "versions", versions_url)
        chosen = next((v for v in versions if v.version == VERSION), None)
        if chosen is None:
            offered = ", ".join(v.version for v in versions) or "none"
            raise PeerUnusable(
                OcpiStatus.UNSUPPORTED_VERSION,
                f"{versions_url} offers versions {offered}; this bridge speaks {VERSION} only",
            )
        reply = await self.client.request("GET", chosen.url, token=token, encode_token=encode_token)
        if not reply.ok:
            raise PeerUnusable(
                OcpiStatus.CLIENT_API_UNUSABLE,
                f"could not get version details from {chosen.url}: {reply.summary()}",
                f"could not get version details: {reply.describe()}",
            )
        details = _parse(TypeAdapter(VersionDetails), reply.data, "version details", chosen.url)
        if details.version != VERSION:
            raise PeerUnusable(
                OcpiStatus.UNSUPPORTED_VERSION,
                f"{chosen.url} describes version {details.version}, expected {VERSION}",
            )
        if not any(e.identifier == ModuleID.CREDENTIALS for e in details.endpoints):
            raise PeerUnusable(
                OcpiStatus.NO_MATCHING_ENDPOINTS, f"{chosen.url} lists no credentials endpoint"
            )
        return PeerApi(
            version=details.version, versions_url=versions_url, endpoints=tuple(details.endpoints)
        )

    # --- outbound: we call the partner's credentials endpoint ----------------------------

    async def register(
        self,
        versions_url: str,
        token_a: str,
        *,
        expected: ExpectedRole | None = None,
        encode_token: bool = True,
    ) -> Partner:
        """Register with a partner that gave us its token A (we are the Sender)."""
        try:
            api = await self.discover(versions_url, token_a, encode_token=encode_token)
        except PeerUnusable as exc:
            raise PartnerOperationFailed(f"OCPI {exc.status_code}: {exc.detail}") from exc
        credentials_url = _credentials_url(api.endpoints)
        token_b = mint_token()
        partner = await self.store.add_registering(
            token_b=token_b,
            versions_url=versions_url,
            version=api.version,
            endpoints=api.endpoints,
            expected=expected,
            encode_token=encode_token,
            now=self._clock(),
        )
        try:
            registered = await self._complete_registration(
                partner, credentials_url, token_a, token_b
            )
        except BaseException:
            # Whatever went wrong, token B must not stay valid for a registration that failed.
            await self.store.delete(partner.id)
            raise
        # The operator's request waits for the steps (they run in their own task: a request
        # cancelled meanwhile does not interrupt them; a failed step is logged and retried).
        task = self._follow_up(registered.id)
        if task is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(task)
        return registered

    async def _complete_registration(
        self, partner: Partner, credentials_url: str, token_a: str, token_b: str
    ) -> Partner:
        encode_token = partner.encode_token
        reply = await self.client.request(
            "POST",
            credentials_url,
            token=token_a,
            encode_token=encode_token,
            body=_dump(self.identity.credentials(token_b)),
        )
        if not reply.ok:
            hint = (
                " (the partner may have registered us anyway: check with it before retrying)"
                if reply.outcome_unknown
                else ""
            )
            raise PartnerOperationFailed(f"registration refused: {reply.describe()}{hint}")
        try:
            theirs = Credentials.model_validate(reply.data)
        except ValidationError as exc:
            raise PartnerOperationFailed(
                f"the partner answered invalid credentials: {_errors(exc)}"
            ) from exc
        try:
            await self._check_roles(partner, theirs.roles)
            return await self.store.store_credentials(
                partner.id,
                authenticated_with=token_b,
                from_status=PartnerStatus.REGISTERING,
                token_accept=token_b,
                token_present=theirs.token,
                versions_url=theirs.url,
                version=partner.version or VERSION,
                endpoints=partner.endpoints,
                roles=theirs.roles,
                now=self._clock(),
                **self._follow_up_steps(),
            )
        except (InvalidParameters, RoleTaken, PartnerChanged) as exc:
            # Registered on their side, refused on ours: undo theirs so both agree.
            undo = await self.client.request(
                "DELETE", credentials_url, token=theirs.token, encode_token=encode_token
            )
            outcome = "undone at the partner" if undo.ok else f"undo failed: {undo.describe()}"
            log.warning("OCPI registration with %s refused: %s; %s", credentials_url, exc, outcome)
            raise PartnerOperationFailed(f"registration refused ({exc}); {outcome}") from exc

    async def rotate(self, partner_id: int) -> Partner:
        """PUT our credentials with a new token; the partner answers with a new token of its
        own. Our old token stays valid until the partner has confirmed. When the outcome is
        unknown (timeout, server error) both our tokens stay valid, so the partner can call us
        whichever it kept."""
        partner = await self._registered(partner_id)
        assert partner.token_present is not None
        credentials_url = _credentials_url(partner.endpoints)
        new_token = mint_token()
        if not await self.store.begin_rotation(partner.id, new_token):
            raise PartnerOperationFailed(f"partner {partner_id} changed", FailureKind.STATE)
        reply = await self.client.request(
            "PUT",
            credentials_url,
            token=partner.token_present,
            encode_token=partner.encode_token,
            body=_dump(self.identity.credentials(new_token)),
        )
        if not reply.ok:
            if reply.outcome_unknown:
                raise PartnerOperationFailed(
                    f"rotation outcome unknown: {reply.describe()}; both our tokens stay valid "
                    "for the partner; check with it, then rotate again"
                )
            await self.store.abort_rotation(partner.id, new_token)
            raise PartnerOperationFailed(f"rotation refused: {reply.describe()}")
        try:
            theirs = Credentials.model_validate(reply.data)
        except ValidationError as exc:
            raise PartnerOperationFailed(
                f"rotation outcome unknown: the partner answered invalid credentials "
                f"({_errors(exc)}); both our tokens stay valid for the partner"
            ) from exc
        api = await self._rediscover(partner, theirs)
        refused: InvalidParameters | None = None
        roles: Sequence[CredentialsRole] = theirs.roles
        try:
            await self._check_roles(partner, theirs.roles)
        except InvalidParameters as exc:
            # The token exchange happened at the partner: keep it, but not the new roles.
            refused, roles = exc, partner.roles
        try:
            updated = await self.store.store_credentials(
                partner.id,
                authenticated_with=new_token,
                from_status=PartnerStatus.REGISTERED,
                token_accept=new_token,
                token_present=theirs.token,
                versions_url=theirs.url,
                version=api.version,
                endpoints=api.endpoints,
                roles=roles,
                now=self._clock(),
            )
        except (RoleTaken, PartnerChanged) as exc:
            raise PartnerOperationFailed(f"rotation answered but not stored: {exc}") from exc
        if refused is not None:
            raise PartnerOperationFailed(
                f"tokens rotated, but the partner's new roles were refused: {refused.message}",
                FailureKind.STATE,
            )
        log.info("OCPI credentials rotated with partner %d", partner.id)
        return updated

    async def _rediscover(self, partner: Partner, theirs: Credentials) -> PeerApi:
        """The partner's endpoints under its new token; the known ones if that fails."""
        try:
            return await self.discover(theirs.url, theirs.token, encode_token=partner.encode_token)
        except PeerUnusable as exc:
            log.warning(
                "OCPI partner %d: endpoints not refreshed after rotation (%s); keeping the "
                "known ones",
                partner.id,
                exc.detail,
            )
            return PeerApi(
                version=partner.version or VERSION,
                versions_url=partner.versions_url or theirs.url,
                endpoints=partner.endpoints,
            )

    async def unregister(self, partner_id: int, *, force: bool = False) -> Partner:
        """DELETE our registration at the partner, then invalidate its tokens here. A partner
        that never registered only loses its token A. With ``force`` the local side is
        unregistered even when the partner cannot be reached."""
        partner = await self.get(partner_id)
        if partner.status is PartnerStatus.UNREGISTERED:
            raise PartnerOperationFailed(
                f"partner {partner_id} is already unregistered", FailureKind.STATE
            )
        if partner.status is PartnerStatus.REGISTERED:
            assert partner.token_present is not None
            reply = await self.client.request(
                "DELETE",
                _credentials_url(partner.endpoints),
                token=partner.token_present,
                encode_token=partner.encode_token,
            )
            if not reply.ok:
                if not force:
                    raise PartnerOperationFailed(
                        f"unregistration refused: {reply.describe()} (nothing changed; "
                        "--force unregisters locally anyway)"
                    )
                log.warning(
                    "OCPI partner %d unregistered locally only: %s", partner.id, reply.describe()
                )
        now = self._clock()
        updated = await self.store.unregister(partner.id, authenticated_with=None, now=now)
        log.info("OCPI partner %d unregistered", partner.id)
        return updated

    async def _registered(self, partner_id: int) -> Partner:
        partner = await self.get(partner_id)
        if not partner.registered:
            raise PartnerOperationFailed(
                f"partner {partner_id} is {partner.status.value.lower()}, not registered",
                FailureKind.STATE,
            )
        return partner


def _credentials_url(endpoints: Sequence[Endpoint]) -> str:
    for endpoint in endpoints:
        if endpoint.identifier == ModuleID.CREDENTIALS:
            return endpoint.url
    raise PartnerOperationFailed("the partner lists no credentials endpoint", FailureKind.STATE)


def _parse(adapter: TypeAdapter[Any], data: Any, what: str, url: str) -> Any:
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise PeerUnusable(
            OcpiStatus.CLIENT_API_UNUSABLE,
            f"{url} did not answer valid OCPI {what}",
            f"invalid {what} from {url}: {_errors(exc)}",
        ) from exc


def _errors(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
        for err in exc.errors()[:5]
    )


def _dump(credentials: Credentials) -> dict[str, Any]:
    dumped: dict[str, Any] = credentials.model_dump(mode="json", exclude_none=True)
    return dumped


def _roles_text(roles: Sequence[CredentialsRole]) -> str:
    return ", ".join(f"{r.country_code}/{r.party_id} ({r.role.value})" for r in roles) or "none"
