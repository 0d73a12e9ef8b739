"""Fixtures for the OCPI side: a running bridge with the admin API enabled and an HTTP client."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bridge.main import BridgeApp
from bridge.partners import ExpectedRole, Partner
from tests.conftest import running_bridge

ADMIN_TOKEN = "admin-token-0123456789"


@pytest.fixture
async def ocpi_bridge(tmp_path: Path) -> AsyncIterator[BridgeApp]:
    async with running_bridge(
        tmp_path, admin_token=ADMIN_TOKEN, country_code="NL", party_id="CPO"
    ) as app:
        yield app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


def base_url(app: BridgeApp) -> str:
    return f"http://127.0.0.1:{app.http_port}"


def token_header(token: str, *, encode: bool = True) -> dict[str, str]:
    value = base64.b64encode(token.encode()).decode() if encode else token
    return {"Authorization": f"Token {value}"}


async def pending_partner(app: BridgeApp, country: str = "NL", party: str = "EMS") -> Partner:
    return await app.partners.add(
        expected=ExpectedRole(role="EMSP", country_code=country, party_id=party)
    )
