"""Control API under ``/_sim`` (plain JSON, no OCPI auth): for the CLI and for tests that run
the simulator in another process. Bind the simulator to 127.0.0.1."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, ConfigDict, ValidationError

from simulators.emsp import wire
from simulators.emsp.driver import EmspDriver
from simulators.emsp.exchange import validation_message
from simulators.emsp.models import AllowedType, CommandType, TokenType, WhitelistType, dump
from simulators.emsp.state import Fault, FaultKind


def _json(value: Any, status: int = 200) -> Response:
    return Response(wire.dumps(value), status_code=status, media_type="application/json")


class RegisterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    versions_url: str
    token: str


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="allow")  # further Token fields pass through
    uid: str
    type: TokenType = TokenType.RFID
    whitelist: WhitelistType = WhitelistType.ALLOWED
    valid: bool = True
    contract_id: str | None = None
    issuer: str | None = None
    allowed: AllowedType | None = None
    push: bool = True


class ChargingProfileBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    charging_profile: dict[str, Any]  # sent as given: broken profiles are allowed


class FaultBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    module: str = "*"
    method: str = "*"
    http: int | None = None  # answer this HTTP status with a plain body
    delay: float | None = None  # answer after this many seconds
    status_code: int | None = None  # answer HTTP 200 with this OCPI status code, no data
    garbage: bool = False  # answer HTTP 200 with a body that is not JSON
    bad_data: bool = False  # answer a success envelope whose data is not the expected object
    message: str = "simulated failure"
    count: int | None = None


def create_control_router(driver: EmspDriver) -> APIRouter:
    state = driver.state
    router = APIRouter(prefix="/_sim")

    @router.get("/state")
    async def get_state() -> Response:
        return _json(state.to_json())

    @router.get("/received")
    async def get_received(module: str | None = None) -> Response:
        return _json([r.to_json() for r in state.received_for(module)])

    @router.get("/objects/{module}")
    async def get_objects(module: str) -> Response:
        stores: dict[str, Any] = {
            "locations": state.locations,
            "sessions": state.sessions,
            "cdrs": state.cdrs,
            "tariffs": state.tariffs,
        }
        if module == "command_results":
            return _json(
                {cid: [dump(r) for r in results] for cid, results in state.command_results.items()}
            )
        if module == "charging_profile_results":
            return _json(
                {
                    rid: [dump(r) for r in results]
                    for rid, results in state.charging_profile_results.items()
                }
            )
        if module == "active_charging_profiles":
            return _json({sid: dump(p) for sid, p in state.active_charging_profiles.items()})
        if module not in stores:
            raise HTTPException(404, f"unknown module {module}")
        return _json([dump(obj) for obj in stores[module].values()])

    @router.post("/token-a")
    async def post_token_a() -> Response:
        return _json({"token": driver.mint_token_a(), "versions_url": state.versions_url})

    @router.post("/register")
    async def post_register(body: RegisterBody) -> Response:
        outcome = await driver.register(body.versions_url, body.token)
        return _json(outcome.to_json())

    @router.post("/rotate")
    async def post_rotate() -> Response:
        return _json((await driver.rotate()).to_json())

    @router.post("/unregister")
    async def post_unregister() -> Response:
        return _json((await driver.unregister()).to_json())

    @router.post("/tokens")
    async def post_tokens(body: TokenBody) -> Response:
        extra = dict(body.model_extra or {})
        try:
            token = driver.add_token(
                body.uid,
                token_type=body.type,
                whitelist=body.whitelist,
                valid=body.valid,
                contract_id=body.contract_id,
                issuer=body.issuer,
                allowed=body.allowed,
                **extra,
            )
        except ValidationError as exc:
            raise HTTPException(422, validation_message("Token", exc)) from exc
        pushed = await driver.push_token(token) if body.push else None
        return _json({"token": dump(token), "push": pushed.to_json() if pushed else None})

    @router.post("/commands/{command}")
    async def post_command(command: CommandType, body: dict[str, Any]) -> Response:
        sent = await driver.send_command(command, body)
        return _json(sent.to_json(state.command_results.get(sent.command_id, [])))

    @router.get("/commands")
    async def get_commands() -> Response:
        return _json(
            [s.to_json(state.command_results.get(cid, [])) for cid, s in state.commands.items()]
        )

    def profile_request(request_id: str) -> Response:
        sent = state.charging_profile_requests[request_id]
        return _json(sent.to_json(state.charging_profile_results.get(request_id, [])))

    @router.post("/chargingprofiles/{session_id}/set")
    async def post_set_charging_profile(session_id: str, body: ChargingProfileBody) -> Response:
        sent = await driver.set_charging_profile(session_id, body.charging_profile)
        return profile_request(sent.request_id)

    @router.post("/chargingprofiles/{session_id}/get")
    async def post_get_charging_profile(session_id: str, duration: int) -> Response:
        sent = await driver.get_active_charging_profile(session_id, duration)
        return profile_request(sent.request_id)

    @router.post("/chargingprofiles/{session_id}/clear")
    async def post_clear_charging_profile(session_id: str) -> Response:
        sent = await driver.clear_charging_profile(session_id)
        return profile_request(sent.request_id)

    @router.get("/chargingprofiles")
    async def get_charging_profiles() -> Response:
        return _json(
            {
                "requests": [
                    s.to_json(state.charging_profile_results.get(rid, []))
                    for rid, s in state.charging_profile_requests.items()
                ],
                "active": {sid: dump(p) for sid, p in state.active_charging_profiles.items()},
                "active_history": {
                    sid: [dump(p) for p in pushed]
                    for sid, pushed in state.active_charging_profile_history.items()
                },
            }
        )

    @router.get("/chargingprofiles/{request_id}")
    async def get_charging_profile_request(request_id: str) -> Response:
        if request_id not in state.charging_profile_requests:
            raise HTTPException(404, f"unknown charging profile request {request_id}")
        return profile_request(request_id)

    @router.get("/pull/{module}")
    async def get_pull(
        module: str,
        date_from: str | None = None,
        date_to: str | None = None,
        limit: int | None = None,
        offset: int | None = None,
    ) -> Response:
        pulled = await driver.pull(
            module, date_from=date_from, date_to=date_to, limit=limit, offset=offset
        )
        return _json(pulled.to_json())

    @router.post("/faults")
    async def post_faults(body: FaultBody) -> Response:
        kinds = [
            (FaultKind.HTTP, body.http),
            (FaultKind.DELAY, body.delay),
            (FaultKind.STATUS, body.status_code),
            (FaultKind.GARBAGE, True if body.garbage else None),
            (FaultKind.BAD_DATA, True if body.bad_data else None),
        ]
        chosen = [(kind, value) for kind, value in kinds if value is not None]
        if len(chosen) != 1:
            raise HTTPException(
                422, "give exactly one of http, delay, status_code, garbage, bad_data"
            )
        kind, _ = chosen[0]
        fault = Fault(
            kind,
            body.module,
            body.method.upper(),
            http_status=body.http or 500,
            delay_s=body.delay or 0.0,
            status_code=body.status_code or 3000,
            status_message=body.message,
            count=body.count,
        )
        try:
            state.faults.add(fault)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from exc
        return _json({"faults": [f.to_json() for f in state.faults.rules]})

    @router.delete("/faults")
    async def delete_faults() -> Response:
        state.faults.clear()
        return _json({"faults": []})

    return router
