"""The simulator's HTTP application: OCPI 2.2.1 eMSP endpoints under ``config.base_path``
(default ``/ocpi/emsp``) plus the ``/_sim`` control API."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from simulators.emsp import wire
from simulators.emsp.control import create_control_router
from simulators.emsp.credentials import CredentialsHandlers
from simulators.emsp.driver import EmspDriver
from simulators.emsp.exchange import Exchange, Reply
from simulators.emsp.receivers import Receivers
from simulators.emsp.wire import ModuleID, StatusCode

ModuleHandler = Callable[..., Awaitable[Reply]]


def create_app(driver: EmspDriver) -> FastAPI:
    state = driver.state
    exchange = Exchange(state)
    credentials = CredentialsHandlers(state, driver.client)
    receivers = Receivers(state, exchange)
    app = FastAPI(title="OCPI eMSP simulator", docs_url=None, redoc_url=None, openapi_url=None)
    base = state.config.base_path
    v = f"{base}/{wire.VERSION}"

    def route(path: str, methods: list[str], module: str, handler: ModuleHandler) -> None:
        async def endpoint(request: Request) -> Response:
            params: dict[str, Any] = dict(request.path_params)
            return await exchange.handle(request, module, lambda call: handler(call, **params))

        app.add_api_route(path, endpoint, methods=methods, include_in_schema=False)

    route(f"{base}/versions", ["GET"], "versions", credentials.versions)
    route(f"{base}/{{version}}", ["GET"], "versions", credentials.version_details)
    creds = f"{v}/{ModuleID.CREDENTIALS}"
    route(creds, ["GET"], ModuleID.CREDENTIALS, credentials.get)
    route(creds, ["POST"], ModuleID.CREDENTIALS, credentials.post)
    route(creds, ["PUT"], ModuleID.CREDENTIALS, credentials.put)
    route(creds, ["DELETE"], ModuleID.CREDENTIALS, credentials.delete)

    location = f"{v}/{ModuleID.LOCATIONS}/{{cc}}/{{pid}}/{{location_id}}"
    for path in (location, f"{location}/{{evse_uid}}", f"{location}/{{evse_uid}}/{{connector_id}}"):
        route(path, ["GET"], ModuleID.LOCATIONS, receivers.get_location)
        route(path, ["PUT"], ModuleID.LOCATIONS, receivers.put_location)
        route(path, ["PATCH"], ModuleID.LOCATIONS, receivers.patch_location)

    session = f"{v}/{ModuleID.SESSIONS}/{{cc}}/{{pid}}/{{session_id}}"
    route(session, ["GET"], ModuleID.SESSIONS, receivers.get_session)
    route(session, ["PUT"], ModuleID.SESSIONS, receivers.put_session)
    route(session, ["PATCH"], ModuleID.SESSIONS, receivers.patch_session)

    route(f"{v}/{ModuleID.CDRS}", ["POST"], ModuleID.CDRS, receivers.post_cdr)
    route(f"{v}/{ModuleID.CDRS}/{{cdr_id}}", ["GET"], ModuleID.CDRS, receivers.get_cdr)

    tariff = f"{v}/{ModuleID.TARIFFS}/{{cc}}/{{pid}}/{{tariff_id}}"
    route(tariff, ["GET"], ModuleID.TARIFFS, receivers.get_tariff)
    route(tariff, ["PUT"], ModuleID.TARIFFS, receivers.put_tariff)
    route(tariff, ["DELETE"], ModuleID.TARIFFS, receivers.delete_tariff)

    route(
        f"{v}/{ModuleID.COMMANDS}/{{command}}/{{command_id}}",
        ["POST"],
        ModuleID.COMMANDS,
        receivers.post_command_result,
    )

    profiles = f"{v}/{ModuleID.CHARGINGPROFILES}"
    route(
        f"{profiles}/{{kind}}/{{request_id}}",
        ["POST"],
        ModuleID.CHARGINGPROFILES,
        receivers.post_charging_profile_result,
    )
    route(
        f"{profiles}/{{session_id}}",
        ["PUT"],
        ModuleID.CHARGINGPROFILES,
        receivers.put_active_charging_profile,
    )

    route(f"{v}/{ModuleID.TOKENS}", ["GET"], ModuleID.TOKENS, receivers.list_tokens)
    route(
        f"{v}/{ModuleID.TOKENS}/{{token_uid}}/authorize",
        ["POST"],
        ModuleID.TOKENS,
        receivers.authorize,
    )

    app.include_router(create_control_router(driver))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith("/_sim"):
            return Response(
                wire.dumps({"detail": exc.detail}),
                status_code=exc.status_code,
                media_type="application/json",
            )
        body = wire.envelope(StatusCode.CLIENT_ERROR, str(exc.detail))
        return Response(
            wire.dumps(body), status_code=exc.status_code, media_type="application/json"
        )

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, exc: RequestValidationError) -> Response:
        detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return Response(
            wire.dumps({"detail": detail}), status_code=422, media_type="application/json"
        )

    return app
