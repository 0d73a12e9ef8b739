"""Driver authorization against the eMSPs' Tokens: the bridge's ``TokenAuthorizer``.

One decision for OCPP 1.6 Authorize and StartTransaction and for 2.0.1 Authorize and
TransactionEvent (reference 4.6, design.md section 5):

===========================================  ==================================================
token                                        decision
===========================================  ==================================================
ALWAYS / ALLOWED                             local: valid -> Accepted, else Blocked (WHITELIST)
ALLOWED_OFFLINE                              real time; no usable answer -> allowed if valid
                                             (WHITELIST), else rejected
NEVER (and any token marked valid=false      real time; no usable answer -> Invalid
that requires real time)
unknown to every eMSP                        the operator's own tokens, then the configured hub
                                             partner in real time, else Unknown (1.6 Invalid)
2.0.1 ``NoAuthorization``                    Accepted: the station was set up for free charging
the token of an eMSP's START_SESSION or      Accepted without asking again (COMMAND), the
RESERVE_NOW at that charger                  command's ``authorization_reference`` kept
===========================================  ==================================================

A real-time answer maps ALLOWED -> Accepted, BLOCKED -> Blocked, EXPIRED -> Expired,
NO_CREDIT -> NoCredit, NOT_ALLOWED -> NotAtThisLocation (1.6: Invalid); HTTP 404 or status
2004 -> Unknown. Every decision is recorded (``ocpi_authorizations``) and its id travels with
the transaction as ``AuthorizationDecision.reference``: the Session and CDR take the token's
owner, ``cdr_token``, ``auth_method`` and ``authorization_reference`` from it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import quote

from pydantic import ValidationError

from bridge.commands import GrantLookup
from bridge.identity import CpoIdentity
from bridge.mapping import tokens as rules
from bridge.ocpi.models import InterfaceRole, ModuleID, validation_details
from bridge.ocpi.sessions import AuthMethod
from bridge.ocpi.tokens import AuthorizationInfo, LocationReferences, Token, TokenType
from bridge.ocpi.wire import OcpiStatus
from bridge.partners import Partner
from bridge.push.client import OcpiClient, OcpiReply, Routing
from bridge.store.locations import ChargerPlace
from bridge.store.tables import AuthorizationRow
from bridge.store.tokens import StoredToken, TokenStore, dump_cdr_token
from csms.domain.model import AuthorizationStatus, IdToken, IdTokenKind
from csms.domain.requests import AuthorizationDecision, AuthorizationRequest, DriverMessage
from csms.ports import TokenAuthorizer

log = logging.getLogger(__name__)


class Source:
    TOKEN = "token"  # a Token an eMSP gave us
    OPERATOR = "operator"  # the operator's own tokens (site file / CLI)
    HUB = "hub"  # unknown here, answered by the hub partner
    COMMAND = "command"  # the token of an eMSP's START_SESSION / RESERVE_NOW
    FREE = "free"  # 2.0.1 NoAuthorization
    UNKNOWN = "unknown"


@dataclass(frozen=True, kw_only=True)
class AuthorizationPolicy:
    timeout_s: float = 5.0
    """Longest wait for an eMSP's real-time answer: keep it well inside the chargers' own
    timeout for Authorize / StartTransaction / TransactionEvent (often 10-30 s)."""
    hub: tuple[str, str] | None = None
    """Country code and party id of the partner asked about tokens nobody gave us."""
    reuse_s: float = 60.0
    """An accepted real-time answer is reused this long for the same token at the same
    charger (1.6 asks Authorize, then StartTransaction, seconds apart)."""


@dataclass(frozen=True, kw_only=True)
class _Outcome:
    """What a decision is made of, before it is recorded."""

    status: AuthorizationStatus
    source: str
    partner_id: int | None = None
    token: Token | None = None
    auth_method: AuthMethod | None = None
    info: AuthorizationInfo | None = None
    expires_at: datetime | None = None
    evse_ids: tuple[int, ...] = ()
    detail: str | None = None
    authorization_reference: str | None = None
    command_id: int | None = None


@dataclass(frozen=True, kw_only=True)
class _Answer:
    """A real-time answer: ``info`` when usable, ``unknown`` on 404/2004, else ``failure``."""

    info: AuthorizationInfo | None = None
    unknown: bool = False
    failure: str | None = None


class OcpiAuthorizer(TokenAuthorizer):
    def __init__(
        self,
        tokens: TokenStore,
        *,
        partner: Callable[[int], Awaitable[Partner | None]],
        partners: Callable[[], Awaitable[list[Partner]]],
        client: OcpiClient,
        identity: Callable[[], CpoIdentity],
        place_of: Callable[[str, int | None], Awaitable[ChargerPlace | None]],
        operator: TokenAuthorizer,
        policy: AuthorizationPolicy,
        clock: Callable[[], datetime],
        grants: GrantLookup | None = None,
    ) -> None:
        self._tokens = tokens
        self._partner = partner
        self._partners = partners
        self._client = client
        self._identity = identity
        self._place_of = place_of
        self._operator = operator
        self._policy = policy
        self._clock = clock
        self._grants = grants
        self._reuse: dict[tuple[str, ...], tuple[float, AuthorizationDecision]] = {}

    async def authorize(self, request: AuthorizationRequest) -> AuthorizationDecision:
        id_token = request.id_token
        if id_token.kind is IdTokenKind.NO_AUTHORIZATION:
            return await self._decided(
                request, _Outcome(status=AuthorizationStatus.ACCEPTED, source=Source.FREE)
            )
        grant = await self._grants(request) if self._grants is not None else None
        if grant is not None:
            return await self._decided(
                request,
                _Outcome(
                    status=AuthorizationStatus.ACCEPTED,
                    source=Source.COMMAND,
                    partner_id=grant.partner_id,
                    token=grant.token,
                    auth_method=AuthMethod.COMMAND,
                    authorization_reference=grant.authorization_reference,
                    detail=f"token of command #{grant.command_id}",
                    command_id=grant.command_id,
                ),
            )
        found = await self._owned(await self._lookup(id_token))
        if found is None:
            return await self._unknown(request)
        stored, owner = found
        reuse_key = (request.charger_id, *_key(stored.token))
        reused = self._reused(reuse_key, request)
        if reused is not None:
            return reused
        outcome = await self._decide(request, stored.token, owner)
        decision = await self._decided(request, outcome)
        if outcome.auth_method is AuthMethod.AUTH_REQUEST and decision.accepted:
            self._remember(reuse_key, decision)
        return decision

    # --- lookup --------------------------------------------------------------------------

    async def _lookup(self, id_token: IdToken) -> list[StoredToken]:
        if id_token.kind is IdTokenKind.EMAID:
            return await self._tokens.find_by_contract(id_token.value)
        types = rules.LOOKUP_TYPES.get(id_token.kind, (TokenType.OTHER,))
        found = await self._tokens.find_by_uid(id_token.value, [t.value for t in types])
        if not found and len(id_token.value) <= 20:
            alias = await self._tokens.find_by_alias(id_token.value)
            if alias is not None:
                found = [alias]
        return found

    async def _owned(self, candidates: list[StoredToken]) -> tuple[StoredToken, Partner] | None:
        """The token to decide on: one whose owner is a registered partner, valid ones first,
        then the most recently updated (tokens of two eMSPs may share an RFID uid)."""
        owned: list[tuple[StoredToken, Partner]] = []
        for candidate in candidates:
            partner = await self._partner(candidate.partner_id)
            if partner is not None and partner.registered:
                owned.append((candidate, partner))
        if not owned:
            return None
        if len(owned) > 1:
            log.warning(
                "token %s is known to %d eMSPs: deciding with %s",
                owned[0][0].token.uid,
                len(owned),
                ", ".join(f"{s.token.country_code}/{s.token.party_id}" for s, _ in owned),
            )
        owned.sort(
            key=lambda pair: (not pair[0].token.valid, -pair[0].token.last_updated.timestamp())
        )
        return owned[0]

    # --- decisions -----------------------------------------------------------------------

    async def _decide(
        self, request: AuthorizationRequest, token: Token, owner: Partner
    ) -> _Outcome:
        now = self._clock()
        expires_at = rules.cache_expiry(token.whitelist, now)
        if not rules.asks_in_real_time(token.whitelist) and token.valid:
            return _Outcome(
                status=AuthorizationStatus.ACCEPTED,
                source=Source.TOKEN,
                partner_id=owner.id,
                token=token,
                auth_method=AuthMethod.WHITELIST,
                expires_at=expires_at,
            )
        if not rules.asks_in_real_time(token.whitelist):
            return _Outcome(
                status=AuthorizationStatus.BLOCKED,
                source=Source.TOKEN,
                partner_id=owner.id,
                token=token,
                expires_at=expires_at,
                detail="token marked valid=false",
            )
        place = await self._place_of(request.charger_id, _evse_id(request))
        answer = await self._ask(
            owner, token.uid, token.type, place, (token.country_code, token.party_id)
        )
        if answer.info is not None:
            return await self._answered(request, answer.info, owner, token, place, expires_at)
        if answer.unknown:
            return _Outcome(
                status=AuthorizationStatus.UNKNOWN,
                source=Source.TOKEN,
                partner_id=owner.id,
                token=token,
                expires_at=expires_at,
                detail="the eMSP does not know the token",
            )
        allowed = rules.allows_on_failure(token.whitelist, token.valid)
        log.warning(
            "real-time authorization of %s by %s failed (%s): %s",
            token.uid,
            owner.label(),
            answer.failure,
            "allowed offline" if allowed else "rejected",
        )
        return _Outcome(
            status=AuthorizationStatus.ACCEPTED if allowed else AuthorizationStatus.INVALID,
            source=Source.TOKEN,
            partner_id=owner.id,
            token=token,
            auth_method=AuthMethod.WHITELIST if allowed else None,
            expires_at=expires_at,
            detail=f"real-time authorization failed: {answer.failure}",
        )

    async def _answered(
        self,
        request: AuthorizationRequest,
        info: AuthorizationInfo,
        owner: Partner,
        token: Token,
        place: ChargerPlace | None,
        expires_at: datetime | None,
    ) -> _Outcome:
        status = rules.ocpp_status(info.allowed)
        evse_ids: tuple[int, ...] = ()
        if status is AuthorizationStatus.ACCEPTED and info.location is not None and place:
            evse_ids, status = _restricted(request, info.location, place)
        answered = info.token if _key(info.token) == _key(token) else token
        return _Outcome(
            status=status,
            source=Source.TOKEN,
            partner_id=owner.id,
            token=answered,
            auth_method=AuthMethod.AUTH_REQUEST,
            info=info,
            expires_at=expires_at,
            evse_ids=evse_ids,
            detail=f"eMSP answered {info.allowed.value}",
        )

    async def _unknown(self, request: AuthorizationRequest) -> AuthorizationDecision:
        operator = await self._operator.authorize(request)
        if operator.status is not AuthorizationStatus.UNKNOWN:
            return await self._decided(
                request,
                _Outcome(
                    status=operator.status,
                    source=Source.OPERATOR,
                    expires_at=operator.expires_at,
                    auth_method=AuthMethod.WHITELIST,
                ),
                group_id=operator.group_id,
            )
        hub = await self._hub()
        if hub is None:
            return await self._decided(
                request,
                _Outcome(status=AuthorizationStatus.UNKNOWN, source=Source.UNKNOWN),
            )
        return await self._decided(request, await self._ask_hub(request, hub))

    async def _ask_hub(self, request: AuthorizationRequest, hub: Partner) -> _Outcome:
        now = self._clock()
        token_type = rules.realtime_type(request.id_token.kind)
        place = await self._place_of(request.charger_id, _evse_id(request))
        assert self._policy.hub is not None
        answer = await self._ask(hub, request.id_token.value, token_type, place, self._policy.hub)
        if answer.info is None:
            detail = "the hub does not know the token" if answer.unknown else answer.failure
            if not answer.unknown:
                log.warning("hub authorization of %s failed: %s", request.id_token.value, detail)
            return _Outcome(
                status=AuthorizationStatus.UNKNOWN
                if answer.unknown
                else AuthorizationStatus.INVALID,
                source=Source.HUB,
                partner_id=hub.id,
                detail=detail,
            )
        outcome = await self._answered(request, answer.info, hub, answer.info.token, place, now)
        owner = await self._owner_of(answer.info.token) or hub
        return replace(outcome, source=Source.HUB, partner_id=owner.id)

    async def _hub(self) -> Partner | None:
        if self._policy.hub is None:
            return None
        country, party = self._policy.hub
        for partner in await self._partners():
            if partner.registered and partner.has_party(country, party):
                return partner
        log.warning("authorization hub %s/%s is not a registered partner", country, party)
        return None

    async def _owner_of(self, token: Token) -> Partner | None:
        for partner in await self._partners():
            if partner.registered and partner.has_party(token.country_code, token.party_id):
                return partner
        return None

    # --- the real-time request -------------------------------------------------------------

    async def _ask(
        self,
        partner: Partner,
        uid: str,
        token_type: TokenType,
        place: ChargerPlace | None,
        to_party: tuple[str, str],
    ) -> _Answer:
        base = partner.endpoint_url(ModuleID.TOKENS, InterfaceRole.SENDER)
        if base is None or partner.token_present is None:
            return _Answer(failure=f"{partner.label()} has no tokens SENDER endpoint")
        body = None
        if place is not None:
            body = LocationReferences(
                location_id=place.location_id, evse_uids=[uid for uid, _ in place.evses] or None
            ).model_dump(mode="json", exclude_none=True)
        identity = self._identity()
        started = time.monotonic()
        reply = await self._client.request(
            "POST",
            f"{base.rstrip('/')}/{quote(uid, safe='')}/authorize",
            token=partner.token_present,
            encode_token=partner.encode_token,
            body=body,
            params={"type": token_type.value},
            routing=Routing(
                from_country_code=identity.country_code,
                from_party_id=identity.party_id,
                to_country_code=to_party[0],
                to_party_id=to_party[1],
            ),
            timeout_s=self._policy.timeout_s,
        )
        log.debug("real-time authorization took %.3f s", time.monotonic() - started)
        return _read_answer(reply)

    # --- recording -----------------------------------------------------------------------

    async def _decided(
        self,
        request: AuthorizationRequest,
        outcome: _Outcome,
        *,
        group_id: str | None = None,
    ) -> AuthorizationDecision:
        reference = uuid.uuid4().hex
        info = outcome.info
        await self._tokens.record(
            AuthorizationRow(
                id=reference,
                charger_id=request.charger_id,
                id_token=request.id_token.value,
                id_token_kind=request.id_token.kind.value,
                status=outcome.status.value,
                source=outcome.source,
                partner_id=outcome.partner_id,
                cdr_token=dump_cdr_token(outcome.token) if outcome.token else None,
                auth_method=outcome.auth_method.value if outcome.auth_method else None,
                authorization_reference=outcome.authorization_reference
                or (info.authorization_reference if info else None),
                allowed=info.allowed.value if info else None,
                detail=outcome.detail,
                command_id=outcome.command_id,
                decided_at=self._clock(),
            )
        )
        message = None
        if info is not None and info.info is not None:
            message = DriverMessage(text=info.info.text, language=info.info.language)
        return AuthorizationDecision(
            status=outcome.status,
            expires_at=outcome.expires_at,
            group_id=outcome.token.group_id if outcome.token else group_id,
            reference=reference,
            evse_ids=outcome.evse_ids,
            message=message,
        )

    def _reused(
        self, key: tuple[str, ...], request: AuthorizationRequest
    ) -> AuthorizationDecision | None:
        entry = self._reuse.get(key)
        if entry is None:
            return None
        until, decision = entry
        if time.monotonic() > until:
            del self._reuse[key]
            return None
        in_use = _evse_id(request)
        if in_use is not None and decision.evse_ids and in_use not in decision.evse_ids:
            return None
        return decision

    def _remember(self, key: tuple[str, ...], decision: AuthorizationDecision) -> None:
        now = time.monotonic()
        if len(self._reuse) > 10_000:
            self._reuse = {k: v for k, v in self._reuse.items() if v[0] > now}
        self._reuse[key] = (now + self._policy.reuse_s, decision)


def _key(token: Token) -> tuple[str, str, str, str]:
    return (token.country_code.upper(), token.party_id.upper(), token.uid.upper(), token.type.value)


def _evse_id(request: AuthorizationRequest) -> int | None:
    return request.evse.ocpp_evse_id if request.evse is not None else None


def _restricted(
    request: AuthorizationRequest, allowed: LocationReferences, place: ChargerPlace
) -> tuple[tuple[int, ...], AuthorizationStatus]:
    """The charger's EVSEs the eMSP allows, and the status: NotAtThisLocation when the
    answer names another Location, or EVSEs none of which (or not the one in use) is here."""
    if allowed.location_id.upper() != place.location_id.upper():
        return (), AuthorizationStatus.NOT_AT_THIS_LOCATION
    if not allowed.evse_uids:
        return (), AuthorizationStatus.ACCEPTED
    names = {uid.upper() for uid in allowed.evse_uids}
    evse_ids = tuple(evse_id for uid, evse_id in place.evses if uid.upper() in names)
    in_use = _evse_id(request)
    if not evse_ids or (in_use is not None and in_use not in evse_ids):
        return (), AuthorizationStatus.NOT_AT_THIS_LOCATION
    return evse_ids, AuthorizationStatus.ACCEPTED


def _read_answer(reply: OcpiReply) -> _Answer:
    if reply.http_status == 404 or reply.status_code == OcpiStatus.UNKNOWN_TOKEN:
        return _Answer(unknown=True)
    if not reply.ok:
        return _Answer(failure=reply.summary())
    try:
        return _Answer(info=AuthorizationInfo.model_validate(reply.data))
    except ValidationError as exc:
        return _Answer(failure=f"invalid AuthorizationInfo: {validation_details(exc, 3)}")
