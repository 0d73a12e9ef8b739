"""The HTTP application (FastAPI): the OCPI 2.2.1 modules, the operator's admin API and
``/health``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

from bridge.api import (
    admin,
    admin_locations,
    admin_outbox,
    chargingprofiles,
    commands,
    credentials,
    locations,
    sessions,
    tokens,
    versions,
)
from bridge.api.context import install_request_context
from bridge.api.errors import install_error_handlers
from bridge.api.platform import OcpiPlatform

HealthProbe = Callable[[], Awaitable[dict[str, Any]]]


def create_app(health: HealthProbe, platform: OcpiPlatform) -> FastAPI:
    app = FastAPI(title="ocpi-bridge", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ocpi = platform
    install_error_handlers(app)
    install_request_context(app)
    app.include_router(versions.router)
    app.include_router(credentials.router)
    app.include_router(locations.router)
    app.include_router(tokens.router)
    app.include_router(commands.router)
    app.include_router(chargingprofiles.router)
    app.include_router(sessions.sessions_router)
    app.include_router(sessions.cdrs_router)
    app.include_router(sessions.tariffs_router)
    app.include_router(admin.router)
    app.include_router(admin_outbox.router)
    app.include_router(admin_locations.router)

    @app.get("/health")
    async def get_health() -> dict[str, Any]:
        return await health()

    return app
