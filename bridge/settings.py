"""Settings of ocpi-bridge, read from the environment (prefix ``OCPI_BRIDGE_``) and an optional
config file (``OCPI_BRIDGE_CONFIG_FILE``: ``KEY=value`` lines, the environment wins).

The composition root (``bridge.main``) hands the values to each part; ``csms`` itself reads no
settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bridge.event_loop import EventLoopName


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OCPI_BRIDGE_",
        extra="ignore",
    )

    database_url: str = "sqlite+aiosqlite:///./var/ocpi-bridge.db"
    database_pool_size: int = Field(
        default=20,
        ge=1,
        le=1000,
        description="database connections kept open for concurrent requests (file or server "
        "database)",
    )
    host: str = "127.0.0.1"
    ocpp_port: int = Field(default=9000, ge=0, le=65535)
    http_port: int = Field(default=8000, ge=0, le=65535)
    heartbeat_interval: int = Field(default=300, gt=0, description="seconds")
    auto_register: bool = False
    ocpp_max_frame_bytes: int = Field(default=256 * 1024, ge=1024)
    ocpp_call_timeout: float = Field(default=30.0, gt=0, description="seconds")
    command_result_margin: float = Field(
        default=10.0,
        gt=0,
        description="seconds added to ocpp_call_timeout for an OCPI command's result deadline",
    )
    command_grant_window: float = Field(
        default=900.0,
        gt=0,
        description="seconds a START_SESSION's token is accepted at its charger, and its "
        "PENDING session waits for the transaction before it becomes INVALID",
    )
    charging_profile_stack_level: int = Field(
        default=50,
        ge=0,
        description="OCPP stackLevel of the eMSPs' TxProfiles (above the CPO's own profiles)",
    )
    charging_profile_min_interval: float = Field(
        default=10.0,
        ge=0,
        description=(
            "seconds: an eMSP's chargingprofiles PUT, GET or DELETE for a session sooner after "
            "its previous accepted one of the same kind is answered TOO_OFTEN (0: no limit)"
        ),
    )
    charging_profile_active_duration: int = Field(
        default=900,
        ge=300,
        le=3600,
        description=(
            "seconds of composite schedule PUT to an eMSP as a session's ActiveChargingProfile "
            "when it changes (the spec asks for 5 to 60 minutes)"
        ),
    )
    frame_retention_days: int = Field(default=90, ge=0, description="0 keeps frames forever")
    frame_log_enabled: bool = True
    base_report: str = Field(
        default="FullInventory",
        pattern="^(FullInventory|SummaryInventory|ConfigurationInventory|)$",
        description="2.0.1 report asked for after an accepted boot; empty asks none",
    )
    log_level: str = "INFO"
    event_loop: EventLoopName = Field(
        default="auto",
        description="event loop of `serve`: uvloop when importable (auto), asyncio or uvloop",
    )
    gc_freeze_survivors: bool = Field(
        default=True,
        description="`serve`: exempt what survives a full garbage collection from the next ones",
    )
    gc_reclaim_interval: float = Field(
        default=3600.0,
        gt=0,
        description="`serve`, survivors frozen: seconds between collections of the whole heap",
    )
    site_file: str | None = None

    # OCPI: the CPO this bridge speaks for, and how it is reached.
    country_code: str = Field(default="NL", pattern="^[A-Za-z]{2}$")
    party_id: str = Field(default="CPO", pattern="^[A-Za-z0-9]{3}$")
    business_name: str = Field(default="ocpi-bridge CPO", min_length=1, max_length=100)
    business_website: str | None = Field(default=None, max_length=255)
    public_url: str | None = Field(
        default=None,
        description="URL partners use to reach the HTTP server (default http://HOST:HTTP_PORT)",
    )
    admin_token: str | None = Field(
        default=None, min_length=16, description="enables the /admin API (Bearer token)"
    )
    ocpi_page_size: int = Field(default=100, ge=1, le=1000)
    ocpi_timeout: float = Field(default=10.0, gt=0, description="seconds per OCPI request")
    liveness_timeout: float = Field(
        default=300.0,
        gt=0,
        description="seconds a charger may stay disconnected before its EVSEs show UNKNOWN",
    )

    # Durable outbox of the pushes to partners.
    outbox_max_attempts: int = Field(
        default=20, ge=1, description="attempts before a push is dead-lettered"
    )
    outbox_backoff_base: float = Field(
        default=1.0, gt=0, description="seconds before the first retry (doubles each attempt)"
    )
    outbox_backoff_max: float = Field(default=600.0, gt=0, description="longest wait, seconds")
    outbox_concurrency: int = Field(
        default=8, ge=1, description="objects pushed in parallel (each object stays in order)"
    )
    outbox_coalesce: bool = Field(
        default=False,
        description="a status PATCH replaces the pending ones of the same EVSE for that partner",
    )
    outbox_poll_interval: float = Field(
        default=2.0, gt=0, description="seconds between outbox polls (pushes queued elsewhere)"
    )

    # Sessions and CDRs.
    currency: str = Field(
        default="EUR", pattern="^[A-Z]{3}$", description="currency of sessions without a tariff"
    )
    session_patch_interval: float = Field(
        default=30.0,
        ge=0,
        description="at most one progress PATCH of a session per window of this many seconds",
    )

    # Driver authorization against the eMSPs' tokens.
    authorization_timeout: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="seconds to wait for an eMSP's real-time authorization (driver waiting)",
    )
    authorization_hub: str | None = Field(
        default=None,
        pattern="^[A-Za-z]{2}/[A-Za-z0-9]{3}$",
        description="COUNTRY/PARTY of the partner asked about tokens no eMSP gave us",
    )
    authorization_reuse: float = Field(
        default=60.0, ge=0, description="seconds an accepted real-time answer is reused"
    )
    authorization_retention_days: int = Field(
        default=90, ge=1, description="days authorization decisions are kept"
    )
    token_pull_interval: float = Field(
        default=6 * 3600.0,
        ge=0,
        description="seconds between pulls of the eMSPs' token lists (0: only on registration)",
    )

    @field_validator("event_loop", mode="before")
    @classmethod
    def _event_loop_lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("authorization_hub", mode="before")
    @classmethod
    def _empty_hub(cls, value: Any) -> Any:
        return None if value == "" else value

    def hub_party(self) -> tuple[str, str] | None:
        if not self.authorization_hub:
            return None
        country, party = self.authorization_hub.upper().split("/")
        return country, party

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        """Accept plain ``sqlite:///`` / ``postgresql://`` URLs and pick the async driver."""
        if value.startswith("sqlite:///"):
            return "sqlite+aiosqlite:///" + value.removeprefix("sqlite:///")
        if value.startswith(("postgresql://", "postgres://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        return value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("public_url must start with http:// or https://")
        return value.rstrip("/")

    def base_url(self, http_port: int | None = None) -> str:
        """Public base URL of the HTTP server (``public_url``, else derived from host/port)."""
        if self.public_url:
            return self.public_url
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{http_port if http_port is not None else self.http_port}"

    def sqlite_path(self) -> Path | None:
        prefix = "sqlite+aiosqlite:///"
        if not self.database_url.startswith(prefix):
            return None
        path = self.database_url.removeprefix(prefix)
        if not path or path == ":memory:":
            return None
        return Path(path)


class SettingsError(ValueError):
    """Settings that cannot be used: each one named as its environment variable, and why."""


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and ``OCPI_BRIDGE_CONFIG_FILE`` (read at call time);
    ``SettingsError`` if any of them is invalid."""
    config_file = os.environ.get("OCPI_BRIDGE_CONFIG_FILE") or None
    try:
        return Settings(_env_file=config_file, **overrides)
    except ValidationError as exc:
        raise SettingsError(_explained(exc, config_file)) from exc


def _explained(exc: ValidationError, config_file: str | None) -> str:
    prefix = Settings.model_config.get("env_prefix", "")
    problems = [
        f"{prefix}{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
        f" (got {error['input']!r})"
        for error in exc.errors()
    ]
    source = f"the environment and {config_file}" if config_file else "the environment"
    return f"invalid settings in {source}: " + "; ".join(problems)
