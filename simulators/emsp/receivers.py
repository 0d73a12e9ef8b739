"""The eMSP's functional endpoints: Locations, Sessions, CDRs, Tariffs (RECEIVER), command
results (for the commands we send), Tokens (SENDER) and ChargingProfiles (SENDER: the results
of our requests and the ActiveChargingProfile pushes)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import quote

from pydantic import BaseModel

from simulators.emsp import wire
from simulators.emsp.exchange import (
    Call,
    Exchange,
    Reply,
    invalid,
    not_found,
    paginate,
    validate,
)
from simulators.emsp.models import (
    CDR,
    EVSE,
    ActiveChargingProfile,
    ActiveChargingProfileResult,
    AuthorizationInfo,
    ChargingProfileResult,
    ClearProfileResult,
    CommandResult,
    CommandType,
    Connector,
    Location,
    LocationReferences,
    Session,
    Tariff,
    TokenType,
    dump,
)
from simulators.emsp.state import Key, ProfileRequestKind, SimState, key
from simulators.emsp.wire import ModuleID, StatusCode

M = TypeVar("M", bound=BaseModel)

PATCH_UNKNOWN = "unknown object, PUT it first"

RESULT_MODELS: dict[
    ProfileRequestKind,
    type[ActiveChargingProfileResult] | type[ChargingProfileResult] | type[ClearProfileResult],
] = {
    ProfileRequestKind.ACTIVE: ActiveChargingProfileResult,
    ProfileRequestKind.SET: ChargingProfileResult,
    ProfileRequestKind.CLEAR: ClearProfileResult,
}


def _python(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(exclude_unset=True)


def _require_last_updated(patch: dict[str, Any]) -> None:
    if "last_updated" not in patch:
        raise invalid("PATCH must contain last_updated")


def _same_id(field: str, url_value: str, body_value: Any) -> None:
    if not isinstance(body_value, str) or body_value.upper() != url_value.upper():
        raise invalid(f"{field} in the body ({body_value!r}) differs from the URL ({url_value!r})")


def _check_patch_ids(patch: dict[str, Any], ids: dict[str, str]) -> None:
    for field, url_value in ids.items():
        if field in patch:
            _same_id(field, url_value, patch[field])


def _merge(stored: dict[str, Any], patch: dict[str, Any], append: tuple[str, ...] = ()) -> Any:
    merged = dict(stored)
    for name, value in patch.items():
        if name in append and isinstance(value, list):
            merged[name] = [*(merged.get(name) or []), *value]
        else:
            merged[name] = value
    return merged


def _later(first: datetime, second: datetime) -> datetime:
    return max(first, second)


class Receivers:
    def __init__(self, state: SimState, exchange: Exchange) -> None:
        self.state = state
        self.exchange = exchange

    def _owner(self, country_code: str, party_id: str) -> None:
        self.exchange.check_owner(country_code, party_id)

    def _object(self, call: Call, model: type[M], country_code: str, party_id: str) -> M:
        """Validated full object whose country_code/party_id match the URL."""
        obj = validate(model, call.json_object())
        for field, url_value in (("country_code", country_code), ("party_id", party_id)):
            _same_id(field, url_value, getattr(obj, field))
        return obj

    # --- locations -----------------------------------------------------------------------

    def _location(self, cc: str, pid: str, location_id: str) -> Location:
        location = self.state.locations.get(key(cc, pid, location_id))
        if location is None:
            raise not_found(f"unknown location {location_id}", StatusCode.UNKNOWN_LOCATION)
        return location

    @staticmethod
    def _evse(location: Location, evse_uid: str) -> EVSE | None:
        return next((e for e in location.evses or [] if e.uid.upper() == evse_uid.upper()), None)

    @staticmethod
    def _connector(evse: EVSE, connector_id: str) -> Connector | None:
        return next((c for c in evse.connectors if c.id.upper() == connector_id.upper()), None)

    async def get_location(
        self,
        call: Call,
        cc: str,
        pid: str,
        location_id: str,
        evse_uid: str | None = None,
        connector_id: str | None = None,
    ) -> Reply:
        self._owner(cc, pid)
        location = self._location(cc, pid, location_id)
        if evse_uid is None:
            return Reply(data=dump(location))
        evse = self._evse(location, evse_uid)
        if evse is None:
            raise not_found(f"unknown EVSE {evse_uid} in location {location_id}")
        if connector_id is None:
            return Reply(data=dump(evse))
        connector = self._connector(evse, connector_id)
        if connector is None:
            raise not_found(f"unknown connector {connector_id} in EVSE {evse_uid}")
        return Reply(data=dump(connector))

    async def put_location(
        self,
        call: Call,
        cc: str,
        pid: str,
        location_id: str,
        evse_uid: str | None = None,
        connector_id: str | None = None,
    ) -> Reply:
        self._owner(cc, pid)
        store_key = key(cc, pid, location_id)
        if evse_uid is None:
            location = self._object(call, Location, cc, pid)
            _same_id("id", location_id, location.id)
            created = store_key not in self.state.locations
            self.state.locations[store_key] = location
            return _stored(created)
        stored = self.state.locations.get(store_key)
        if stored is None:
            raise invalid(f"unknown location {location_id}, PUT it first")
        if connector_id is None:
            evse = validate(EVSE, call.json_object())
            _same_id("uid", evse_uid, evse.uid)
            created = self._evse(stored, evse_uid) is None
            self._replace_evse(store_key, stored, evse)
            return _stored(created)
        parent = self._evse(stored, evse_uid)
        if parent is None:
            raise invalid(f"unknown EVSE {evse_uid}, PUT it first")
        connector = validate(Connector, call.json_object())
        _same_id("id", connector_id, connector.id)
        created = self._connector(parent, connector_id) is None
        self._replace_connector(store_key, stored, parent, connector)
        return _stored(created)

    async def patch_location(
        self,
        call: Call,
        cc: str,
        pid: str,
        location_id: str,
        evse_uid: str | None = None,
        connector_id: str | None = None,
    ) -> Reply:
        self._owner(cc, pid)
        patch = call.json_object()
        _require_last_updated(patch)
        store_key = key(cc, pid, location_id)
        stored = self.state.locations.get(store_key)
        if stored is None:
            raise invalid(PATCH_UNKNOWN)
        if evse_uid is None:
            _check_patch_ids(patch, {"country_code": cc, "party_id": pid, "id": location_id})
            merged = validate(Location, _merge(_python(stored), patch))
            self.state.locations[store_key] = merged
            return Reply(stored=True)
        evse = self._evse(stored, evse_uid)
        if evse is None:
            raise invalid(PATCH_UNKNOWN)
        if connector_id is None:
            _check_patch_ids(patch, {"uid": evse_uid})
            self._replace_evse(store_key, stored, validate(EVSE, _merge(_python(evse), patch)))
            return Reply(stored=True)
        connector = self._connector(evse, connector_id)
        if connector is None:
            raise invalid(PATCH_UNKNOWN)
        _check_patch_ids(patch, {"id": connector_id})
        merged_connector = validate(Connector, _merge(_python(connector), patch))
        self._replace_connector(store_key, stored, evse, merged_connector)
        return Reply(stored=True)

    def _replace_evse(self, store_key: Key, location: Location, evse: EVSE) -> None:
        """Insert or replace ``evse`` in the stored location; bumps its last_updated."""
        data = _python(location)
        evses = [e for e in location.evses or [] if e.uid.upper() != evse.uid.upper()]
        position = next(
            (i for i, e in enumerate(location.evses or []) if e.uid.upper() == evse.uid.upper()),
            len(evses),
        )
        evses.insert(position, evse)
        data["evses"] = [_python(e) for e in evses]
        data["last_updated"] = _later(location.last_updated, evse.last_updated)
        self.state.locations[store_key] = validate(Location, data)

    def _replace_connector(
        self, store_key: Key, location: Location, evse: EVSE, connector: Connector
    ) -> None:
        data = _python(evse)
        connectors = list(evse.connectors)
        position = next(
            (i for i, c in enumerate(connectors) if c.id.upper() == connector.id.upper()), None
        )
        if position is None:
            connectors.append(connector)
        else:
            connectors[position] = connector
        data["connectors"] = [_python(c) for c in connectors]
        data["last_updated"] = _later(evse.last_updated, connector.last_updated)
        self._replace_evse(store_key, location, validate(EVSE, data))

    # --- sessions ------------------------------------------------------------------------

    async def get_session(self, call: Call, cc: str, pid: str, session_id: str) -> Reply:
        self._owner(cc, pid)
        session = self.state.sessions.get(key(cc, pid, session_id))
        if session is None:
            raise not_found(f"unknown session {session_id}")
        return Reply(data=dump(session))

    async def put_session(self, call: Call, cc: str, pid: str, session_id: str) -> Reply:
        self._owner(cc, pid)
        session = self._object(call, Session, cc, pid)
        _same_id("id", session_id, session.id)
        store_key = key(cc, pid, session_id)
        created = store_key not in self.state.sessions
        self.state.sessions[store_key] = session
        return _stored(created)

    async def patch_session(self, call: Call, cc: str, pid: str, session_id: str) -> Reply:
        """Fields replace, except ``charging_periods``, which are appended."""
        self._owner(cc, pid)
        patch = call.json_object()
        _require_last_updated(patch)
        store_key = key(cc, pid, session_id)
        stored = self.state.sessions.get(store_key)
        if stored is None:
            raise invalid(PATCH_UNKNOWN)
        _check_patch_ids(patch, {"country_code": cc, "party_id": pid, "id": session_id})
        merged = _merge(_python(stored), patch, append=("charging_periods",))
        self.state.sessions[store_key] = validate(Session, merged)
        return Reply(stored=True)

    # --- cdrs ----------------------------------------------------------------------------

    def cdr_url(self, cdr: CDR) -> str:
        return f"{self.state.endpoint_url(ModuleID.CDRS)}/{quote(cdr.id, safe='')}"

    async def post_cdr(self, call: Call) -> Reply:
        cdr = validate(CDR, call.json_object())
        self.exchange.check_owner(cdr.country_code, cdr.party_id, "body")
        store_key = key(cdr.country_code, cdr.party_id, cdr.id)
        if store_key in self.state.cdrs:
            raise invalid(f"CDR {cdr.id} of {cdr.country_code}/{cdr.party_id} already received")
        self.state.cdrs[store_key] = cdr
        return Reply(http_status=201, headers={wire.LOCATION: self.cdr_url(cdr)}, stored=True)

    async def get_cdr(self, call: Call, cdr_id: str) -> Reply:
        peer = self.state.peer
        for (cc, pid, stored_id), cdr in self.state.cdrs.items():
            if stored_id == cdr_id.upper() and peer is not None and peer.owns(cc, pid):
                return Reply(data=dump(cdr))
        raise not_found(f"unknown CDR {cdr_id}")

    # --- tariffs -------------------------------------------------------------------------

    async def get_tariff(self, call: Call, cc: str, pid: str, tariff_id: str) -> Reply:
        self._owner(cc, pid)
        tariff = self.state.tariffs.get(key(cc, pid, tariff_id))
        if tariff is None:
            raise not_found(f"unknown tariff {tariff_id}")
        return Reply(data=dump(tariff))

    async def put_tariff(self, call: Call, cc: str, pid: str, tariff_id: str) -> Reply:
        self._owner(cc, pid)
        tariff = self._object(call, Tariff, cc, pid)
        _same_id("id", tariff_id, tariff.id)
        store_key = key(cc, pid, tariff_id)
        created = store_key not in self.state.tariffs
        self.state.tariffs[store_key] = tariff
        return _stored(created)

    async def delete_tariff(self, call: Call, cc: str, pid: str, tariff_id: str) -> Reply:
        self._owner(cc, pid)
        if self.state.tariffs.pop(key(cc, pid, tariff_id), None) is None:
            raise not_found(f"unknown tariff {tariff_id}")
        return Reply(stored=True)

    # --- command results -----------------------------------------------------------------

    async def post_command_result(self, call: Call, command: str, command_id: str) -> Reply:
        if command not in CommandType.__members__:
            raise invalid(f"unknown command {command!r}")
        result = validate(CommandResult, call.json_object())
        sent = self.state.commands.get(command_id)
        if sent is not None and sent.command != command:
            raise invalid(f"command {command_id} was a {sent.command}, not a {command}")
        self.state.command_results.setdefault(command_id, []).append(result)
        return Reply(stored=True)

    # --- charging profiles (SENDER) ------------------------------------------------------

    async def post_charging_profile_result(self, call: Call, kind: str, request_id: str) -> Reply:
        """The CPO's asynchronous answer to one of our chargingprofiles requests, at the
        response_url we gave (``{chargingprofiles}/{active|set|clear}/{request_id}``)."""
        try:
            request_kind = ProfileRequestKind(kind)
        except ValueError:
            raise invalid(f"unknown charging profile result kind {kind!r}") from None
        sent = self.state.charging_profile_requests.get(request_id)
        if sent is not None and sent.kind is not request_kind:
            raise invalid(f"request {request_id} was a {sent.method}, not a {kind} request")
        model = RESULT_MODELS[request_kind]
        result = validate(model, call.json_object())
        self.state.charging_profile_results.setdefault(request_id, []).append(result)
        return Reply(stored=True)

    async def put_active_charging_profile(self, call: Call, session_id: str) -> Reply:
        """The CPO pushes the ActiveChargingProfile of a session we set a profile for."""
        profile = validate(ActiveChargingProfile, call.json_object())
        created = session_id not in self.state.active_charging_profiles
        self.state.active_charging_profiles[session_id] = profile
        self.state.active_charging_profile_history.setdefault(session_id, []).append(profile)
        return _stored(created)

    # --- tokens (SENDER) -----------------------------------------------------------------

    async def list_tokens(self, call: Call) -> Reply:
        tokens = [entry.token for entry in self.state.tokens.values()]
        page, headers = paginate(
            call,
            tokens,
            self.state.config.max_limit,
            lambda t: (t.last_updated, t.uid.upper(), t.type.value),
        )
        return Reply(data=[dump(t) for t in page], headers=headers)

    async def authorize(self, call: Call, token_uid: str) -> Reply:
        token_type = call.param("type") or TokenType.RFID.value
        if token_type not in TokenType.__members__:
            raise invalid(f"unknown token type {token_type!r}")
        location: LocationReferences | None = None
        if call.raw_body.strip():
            location = validate(LocationReferences, call.json_object())
        entry = self.state.find_token(token_uid, token_type)
        if entry is None:
            raise not_found(f"unknown token {token_uid} ({token_type})", StatusCode.UNKNOWN_TOKEN)
        info = AuthorizationInfo(
            allowed=entry.effective_allowed,
            token=entry.token,
            authorization_reference=str(uuid.uuid4()),
            location=location,
        )
        return Reply(data=info.model_dump(mode="json", exclude_none=True))


def _stored(created: bool) -> Reply:
    return Reply(http_status=201 if created else 200, stored=True)
