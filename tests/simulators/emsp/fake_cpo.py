"""A minimal test-only CPO for the eMSP simulator's tests: versions, version details and the
credentials module (both directions), a paginated locations SENDER, a tokens RECEIVER, a
commands RECEIVER and a chargingprofiles RECEIVER (answers ``profile_answer``). Written
independently of ``simulators.emsp`` (its own base64, envelope and headers) so that a shared
bug cannot hide."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response

from simulators.emsp.server import EmbeddedServer
from tests.simulators.emsp.builders import a_location

CPO_COUNTRY, CPO_PARTY = "NL", "CPO"


def b64(token: str) -> str:
    return base64.b64encode(token.encode()).decode()


def now_text() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def envelope(status_code: int = 1000, data: Any = None, message: str = "OK") -> dict[str, Any]:
    body: dict[str, Any] = {"status_code": status_code, "status_message": message}
    if data is not None:
        body["data"] = data
    body["timestamp"] = now_text()
    return body


class FakeCpo:
    def __init__(
        self,
        *,
        versions: tuple[str, ...] = ("2.2.1",),
        with_credentials: bool = True,
        locations: int = 0,
        page_size: int = 2,
    ) -> None:
        self.versions = versions
        self.with_credentials = with_credentials
        self.page_size = page_size
        self.locations = [
            a_location(f"L{n:02d}", last_updated=f"2024-01-01T00:00:{n:02d}Z")
            for n in range(locations)
        ]
        self.token_a = secrets.token_hex(8)
        self.accepted: set[str] = {self.token_a}  # tokens the eMSP may present to us
        self.emsp_token: str | None = None  # token we present to the eMSP
        self.emsp_versions_url: str | None = None
        self.emsp_endpoints: dict[str, str] = {}
        self.requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.tokens: dict[str, Any] = {}
        self.commands: list[tuple[str, Any]] = []
        # chargingprofiles requests: (method, session id, query, body)
        self.profile_requests: list[tuple[str, str, dict[str, str], Any]] = []
        self.profile_answer: dict[str, Any] = {"result": "ACCEPTED", "timeout": 30}
        self.app = self._build()
        self._server: EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.http = httpx.AsyncClient(timeout=5)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=0, lifespan="off", log_config=None, access_log=False
        )
        self._server = EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            await asyncio.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}/ocpi/cpo"

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.exit()
            await self._task
        await self.http.aclose()

    @property
    def versions_url(self) -> str:
        return f"{self.base}/versions"

    def credentials(self, token: str) -> dict[str, Any]:
        return {
            "token": token,
            "url": self.versions_url,
            "roles": [
                {
                    "role": "CPO",
                    "party_id": CPO_PARTY,
                    "country_code": CPO_COUNTRY,
                    "business_details": {"name": "Fake CPO"},
                }
            ],
        }

    # --- calling the eMSP ----------------------------------------------------------------

    async def call(
        self,
        method: str,
        url: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw: bool = False,
        routing: bool = True,
        headers: dict[str, str] | None = None,
        content: bytes | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        """A request to the eMSP with our token (base64 unless ``raw``) and routing headers."""
        token = token if token is not None else self.emsp_token
        sent: dict[str, str] = {"X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": "corr-1"}
        if token:
            sent["Authorization"] = f"Token {token if raw else b64(token)}"
        if routing:
            sent.update(
                {
                    "OCPI-from-country-code": CPO_COUNTRY,
                    "OCPI-from-party-id": CPO_PARTY,
                    "OCPI-to-country-code": "NL",
                    "OCPI-to-party-id": "EMS",
                }
            )
        sent.update(headers or {})
        if body is not None:
            content = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        return await self.http.request(method, url, headers=sent, content=content, params=params)

    async def _discover(self, versions_url: str, token: str) -> dict[str, str]:
        listing = (await self.call("GET", versions_url, token=token, routing=False)).json()
        url = next(v["url"] for v in listing["data"] if v["version"] == "2.2.1")
        details = (await self.call("GET", url, token=token, routing=False)).json()
        return {e["identifier"]: e["url"] for e in details["data"]["endpoints"]}

    async def register_at(self, versions_url: str, token_a: str) -> httpx.Response:
        """The CPO as Sender of the handshake (POST to the eMSP)."""
        self.emsp_endpoints = await self._discover(versions_url, token_a)
        token_b = secrets.token_hex(8)
        self.accepted.add(token_b)
        response = await self.call(
            "POST",
            self.emsp_endpoints["credentials"],
            token=token_a,
            body=self.credentials(token_b),
            routing=False,
        )
        if response.status_code == 200 and response.json()["status_code"] == 1000:
            self.emsp_token = response.json()["data"]["token"]
            self.emsp_versions_url = versions_url
        return response

    async def rotate(self) -> httpx.Response:
        fresh = secrets.token_hex(8)
        self.accepted.add(fresh)
        response = await self.call(
            "PUT", self.emsp_endpoints["credentials"], body=self.credentials(fresh), routing=False
        )
        if response.status_code == 200 and response.json()["status_code"] == 1000:
            self.emsp_token = response.json()["data"]["token"]
        return response

    async def unregister(self) -> httpx.Response:
        return await self.call("DELETE", self.emsp_endpoints["credentials"], routing=False)

    def emsp_url(self, module: str, *parts: str) -> str:
        return "/".join([self.emsp_endpoints[module], *parts])

    # --- the CPO's own endpoints ---------------------------------------------------------

    def _authorized(self, request: Request) -> str | None:
        value = request.headers.get("Authorization", "")
        if not value.startswith("Token "):
            return None
        try:
            token = base64.b64decode(value[6:], validate=True).decode()
        except ValueError:
            return None
        return token if token in self.accepted else None

    def _build(self) -> FastAPI:
        app = FastAPI()

        def reply(
            body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
        ) -> Response:
            return Response(
                json.dumps(body),
                status_code=status,
                media_type="application/json",
                headers=headers,
            )

        @app.middleware("http")
        async def record(request: Request, call_next: Any) -> Any:
            raw = await request.body()
            body = json.loads(raw) if raw else None
            self.requests.append((request.method, request.url.path, dict(request.headers), body))
            if self._authorized(request) is None:
                return reply(envelope(2000, message="unauthorized"), 401)
            return await call_next(request)

        @app.get("/ocpi/cpo/versions")
        async def versions() -> Response:
            data = [{"version": v, "url": f"{self.base}/{v}"} for v in self.versions]
            return reply(envelope(data=data))

        @app.get("/ocpi/cpo/2.2.1")
        async def details() -> Response:
            modules = [
                ("locations", "SENDER"),
                ("tokens", "RECEIVER"),
                ("commands", "RECEIVER"),
                ("chargingprofiles", "RECEIVER"),
            ]
            if self.with_credentials:
                modules.insert(0, ("credentials", "SENDER"))
            endpoints = [
                {"identifier": m, "role": r, "url": f"{self.base}/2.2.1/{m}"} for m, r in modules
            ]
            return reply(envelope(data={"version": "2.2.1", "endpoints": endpoints}))

        @app.post("/ocpi/cpo/2.2.1/credentials")
        async def post_credentials(request: Request) -> Response:
            body = json.loads(await request.body())
            if self._authorized(request) != self.token_a:
                return reply(envelope(2000, message="already registered"), 405)
            self.emsp_token = body["token"]
            self.emsp_versions_url = body["url"]
            self.emsp_endpoints = await self._discover(body["url"], body["token"])
            token_c = secrets.token_hex(8)
            self.accepted = {token_c}
            return reply(envelope(data=self.credentials(token_c)))

        @app.put("/ocpi/cpo/2.2.1/credentials")
        async def put_credentials(request: Request) -> Response:
            body = json.loads(await request.body())
            self.emsp_token = body["token"]
            self.emsp_endpoints = await self._discover(body["url"], body["token"])
            token = secrets.token_hex(8)
            self.accepted = {token}
            return reply(envelope(data=self.credentials(token)))

        @app.delete("/ocpi/cpo/2.2.1/credentials")
        async def delete_credentials() -> Response:
            self.accepted = set()
            self.emsp_token = None
            return reply(envelope())

        @app.get("/ocpi/cpo/2.2.1/locations")
        async def list_locations(request: Request) -> Response:
            offset = int(request.query_params.get("offset", "0"))
            limit = min(int(request.query_params.get("limit", self.page_size)), self.page_size)
            page = self.locations[offset : offset + limit]
            headers = {"X-Total-Count": str(len(self.locations)), "X-Limit": str(self.page_size)}
            if offset + limit < len(self.locations):
                url = f"{self.base}/2.2.1/locations?offset={offset + limit}&limit={limit}"
                headers["Link"] = f'<{url}>; rel="next"'
            return reply(envelope(data=page), headers=headers)

        @app.put("/ocpi/cpo/2.2.1/tokens/{cc}/{pid}/{uid}")
        async def put_token(request: Request, cc: str, pid: str, uid: str) -> Response:
            token_type = request.query_params.get("type", "RFID")
            self.tokens[f"{cc}/{pid}/{uid}/{token_type}"] = json.loads(await request.body())
            return reply(envelope(), 201)

        @app.post("/ocpi/cpo/2.2.1/commands/{command}")
        async def post_command(request: Request, command: str) -> Response:
            self.commands.append((command, json.loads(await request.body())))
            return reply(envelope(data={"result": "ACCEPTED", "timeout": 30}))

        @app.api_route(
            "/ocpi/cpo/2.2.1/chargingprofiles/{session_id}", methods=["GET", "PUT", "DELETE"]
        )
        async def charging_profiles(request: Request, session_id: str) -> Response:
            raw = await request.body()
            body = json.loads(raw) if raw else None
            query = dict(request.query_params)
            self.profile_requests.append((request.method, session_id, query, body))
            return reply(envelope(data=self.profile_answer))

        return app
