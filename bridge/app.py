"""The HTTP application (FastAPI). OCPI modules are mounted here; for now it serves the
operator's health endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI

HealthProbe = Callable[[], Awaitable[dict[str, Any]]]


def create_app(health: HealthProbe) -> FastAPI:
    app = FastAPI(title="ocpi-bridge", docs_url=None, redoc_url=None)

    @app.get("/health")
    async def get_health() -> dict[str, Any]:
        return await health()

    return app
