"""The eMSPs' Tokens: what they push to our tokens RECEIVER, and what we pull from their tokens
SENDER (reference 3.5) on registration and periodically.

A pull asks for the tokens changed since the latest ``last_updated`` seen in the previous pull
(``date_from`` is inclusive: the last ones come again, which is harmless), follows ``Link``
page by page, stores each page in one transaction and keeps going past invalid tokens (each is
logged and counted). A token of a party that is not the partner's is refused.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from bridge.identity import CpoIdentity
from bridge.ocpi.models import InterfaceRole, ModuleID
from bridge.ocpi.tokens import Token, patched_token
from bridge.ocpi.wire import format_datetime
from bridge.partners import Partner
from bridge.push.client import OcpiClient, Routing, routing_to
from bridge.store.tokens import PutOutcome, StoredToken, TokenStore

log = logging.getLogger(__name__)

_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?', re.IGNORECASE)


@dataclass(kw_only=True)
class PullReport:
    partner_id: int
    pages: int = 0
    stored: int = 0
    unchanged: int = 0
    invalid: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "partner_id": self.partner_id,
            "pages": self.pages,
            "stored": self.stored,
            "unchanged": self.unchanged,
            "invalid": self.invalid,
            "error": self.error,
        }


class TokenService:
    def __init__(
        self,
        store: TokenStore,
        *,
        partners: Callable[[], Awaitable[list[Partner]]],
        client: OcpiClient,
        identity: Callable[[], CpoIdentity],
        clock: Callable[[], datetime],
        page_limit: int = 1000,
        max_pages: int = 10_000,
        registration_delay_s: float = 1.0,
    ) -> None:
        self.store = store
        self._partners = partners
        self._client = client
        self._identity = identity
        self._clock = clock
        self._page_limit = page_limit
        self._max_pages = max_pages
        self._registration_delay_s = registration_delay_s
        self._tasks: set[asyncio.Task[None]] = set()

    # --- RECEIVER --------------------------------------------------------------------------

    async def get(
        self, country_code: str, party_id: str, uid: str, token_type: str
    ) -> StoredToken | None:
        return await self.store.get(country_code, party_id, uid, token_type)

    async def put(self, partner_id: int, token: Token) -> PutOutcome:
        outcome = await self.store.put(partner_id, token, now=self._clock())
        if outcome is PutOutcome.KEPT_NEWER:
            log.info(
                "token %s/%s/%s (%s) PUT with an older last_updated: the stored one is kept",
                token.country_code,
                token.party_id,
                token.uid,
                token.type.value,
            )
        return outcome

    async def patch(self, stored: StoredToken, patch: dict[str, Any]) -> Token:
        """Apply a PATCH to a stored token. ``ValueError`` when the PATCH is not acceptable."""
        token = patched_token(stored.token, patch)
        await self.store.put(stored.partner_id, token, now=self._clock())
        return token

    # --- pulls from the eMSPs' SENDER ----------------------------------------------------------

    async def pull_all(self) -> list[PullReport]:
        """Pull every registered partner that has a tokens SENDER (the periodic job)."""
        reports = []
        for partner in await self._partners():
            if partner.registered and partner.endpoint_url(ModuleID.TOKENS, InterfaceRole.SENDER):
                reports.append(await self.pull(partner))
        return reports

    async def pull_registered(self, partner: Partner) -> None:
        """On registration: pull the new partner's tokens in the background, once the
        registration request that triggered it has been answered (a partner may serve its
        token list only then). A failure is logged; the periodic pull retries."""
        if partner.endpoint_url(ModuleID.TOKENS, InterfaceRole.SENDER) is None:
            return
        task = asyncio.create_task(
            self._pull_later(partner), name=f"token-pull-partner-{partner.id}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    async def _pull_later(self, partner: Partner) -> None:
        await asyncio.sleep(self._registration_delay_s)
        await self.pull(partner)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def settled(self) -> None:
        """Wait until the pulls started on registration have ended (their errors are logged
        by then, not raised here)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def stop(self) -> None:
        """Cancel pulls still running (at shutdown)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def pull(self, partner: Partner) -> PullReport:
        report = PullReport(partner_id=partner.id)
        started = self._clock()
        base = partner.endpoint_url(ModuleID.TOKENS, InterfaceRole.SENDER)
        if base is None or partner.token_present is None or not partner.registered:
            report.error = "the partner is not registered with a tokens SENDER endpoint"
            return report
        progress = await self.store.pull_progress(partner.id)
        since = progress.pulled_until if progress is not None else None
        latest = await self._pull_pages(partner, base, since, report)
        await self.store.save_pull(
            partner.id, attempted_at=started, pulled_until=latest, error=report.error
        )
        level = logging.WARNING if report.error or report.invalid else logging.INFO
        log.log(
            level,
            "token pull from %s: %d pages, %d stored, %d unchanged, %d invalid%s",
            partner.label(),
            report.pages,
            report.stored,
            report.unchanged,
            len(report.invalid),
            f", stopped: {report.error}" if report.error else "",
        )
        return report

    async def _pull_pages(
        self, partner: Partner, base: str, since: datetime | None, report: PullReport
    ) -> datetime | None:
        """Fetch and store every page; the latest ``last_updated`` stored (``None``: none)."""
        assert partner.token_present is not None
        params: dict[str, str] | None = {"offset": "0", "limit": str(self._page_limit)}
        if since is not None and params is not None:
            params["date_from"] = format_datetime(since)
        url: str | None = base
        seen: set[str] = set()
        latest: datetime | None = None
        while url is not None:
            if report.pages >= self._max_pages or url in seen:
                report.error = f"stopped after {report.pages} pages (the Link never ends)"
                break
            seen.add(url)
            reply = await self._client.request(
                "GET",
                url,
                token=partner.token_present,
                encode_token=partner.encode_token,
                params=params,
                routing=self._routing(partner),
            )
            if not reply.ok or not isinstance(reply.data, list):
                report.error = reply.summary() if not reply.ok else "data is not a list"
                break
            report.pages += 1
            tokens = self._valid_tokens(partner, reply.data, report)
            counts = await self.store.put_many(partner.id, tokens, now=self._clock())
            report.stored += counts[PutOutcome.CREATED] + counts[PutOutcome.REPLACED]
            report.unchanged += counts[PutOutcome.UNCHANGED] + counts[PutOutcome.KEPT_NEWER]
            for token in tokens:
                latest = token.last_updated if latest is None else max(latest, token.last_updated)
            url, params = _next_link(reply.headers.get("Link")), None
        return latest

    def _valid_tokens(self, partner: Partner, items: list[Any], report: PullReport) -> list[Token]:
        tokens = []
        for index, item in enumerate(items):
            try:
                token = Token.model_validate(item)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "token"
                report.invalid.append(f"page {report.pages} item {index}: {where}: {first['msg']}")
                continue
            if not partner.has_party(token.country_code, token.party_id):
                report.invalid.append(
                    f"page {report.pages} item {index}: {token.country_code}/{token.party_id} "
                    "is not a party of this partner"
                )
                continue
            tokens.append(token)
        return tokens

    def _routing(self, partner: Partner) -> Routing | None:
        identity = self._identity()
        return routing_to(identity.country_code, identity.party_id, partner.roles)


def _next_link(header: str | None) -> str | None:
    if not header:
        return None
    match = _NEXT_LINK.search(header)
    return match.group(1) if match else None
