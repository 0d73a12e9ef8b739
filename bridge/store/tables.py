"""Tables of the OCPI side (SQLModel). Times are stored as UTC."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from csms.store.types import UtcDateTime


def _utc_column(nullable: bool = True) -> Column[datetime]:
    return Column(UtcDateTime(), nullable=nullable)


class PartnerRow(SQLModel, table=True):
    """One OCPI counter-party. Tokens are stored as issued: OCPI needs them in plain text (we
    present ``token_present`` back and return ``token_accept`` on a credentials GET)."""

    __tablename__ = "ocpi_partners"

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(max_length=16)
    initiated_by: str = Field(max_length=8)
    token_accept: str | None = Field(default=None, max_length=64, unique=True)
    token_accept_pending: str | None = Field(default=None, max_length=64, unique=True)
    token_present: str | None = Field(default=None, max_length=64)
    encode_token: bool = True
    versions_url: str | None = Field(default=None, max_length=255)
    version: str | None = Field(default=None, max_length=10)
    endpoints_json: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    roles_json: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    expected_role: str | None = Field(default=None, max_length=8)
    expected_country_code: str | None = Field(default=None, max_length=2)
    expected_party_id: str | None = Field(default=None, max_length=3)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    updated_at: datetime = Field(sa_column=_utc_column(nullable=False))
    registered_at: datetime | None = Field(default=None, sa_column=_utc_column())


class PartnerPartyRow(SQLModel, table=True):
    """The parties (country code + party id) a registered partner speaks for. A party belongs
    to one partner whatever its roles, so no partner can act for another's party."""

    __tablename__ = "ocpi_partner_parties"
    __table_args__ = (UniqueConstraint("country_code", "party_id"),)

    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("ocpi_partners.id", ondelete="CASCADE"), index=True)
    )
    country_code: str = Field(max_length=2)
    party_id: str = Field(max_length=3)


class LocationRow(SQLModel, table=True):
    """One OCPI Location, its EVSEs and connectors: ``document`` is the complete OCPI JSON as
    served and pushed (kept current in the transaction that changes any part of it)."""

    __tablename__ = "ocpi_locations"
    __table_args__ = (Index("ix_ocpi_locations_published_order", "publish", "last_updated", "key"),)

    key: str = Field(primary_key=True, max_length=36, description="upper-cased id (CiString)")
    publish: bool
    origin: str = Field(max_length=8, description="'site' (the site file) or 'api'")
    last_updated: datetime = Field(sa_column=_utc_column(nullable=False))
    document: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class EvseBindingRow(SQLModel, table=True):
    """Which OCPP EVSE of which charger an OCPI EVSE shows (live EVSEs only: operator-declared
    PLANNED/REMOVED EVSEs have none)."""

    __tablename__ = "ocpi_evse_bindings"
    __table_args__ = (UniqueConstraint("charger_id", "ocpp_evse_id"),)

    evse_key: str = Field(primary_key=True, max_length=36, description="upper-cased EVSE uid")
    location_key: str = Field(max_length=36, index=True)
    charger_id: str = Field(max_length=48, index=True)
    ocpp_evse_id: int
    connectors_json: str = Field(
        default="[]", sa_column=Column(Text, nullable=False), description="[[ocpi id, ocpp id]]"
    )


class ConnectorStateRow(SQLModel, table=True):
    """The last OCPP status of each connector (``0/0`` is a 1.6 charger's connectorId 0)."""

    __tablename__ = "ocpi_connector_states"

    charger_id: str = Field(primary_key=True, max_length=48)
    ocpp_evse_id: int = Field(primary_key=True)
    connector_id: int = Field(primary_key=True)
    status: str = Field(max_length=16)
    changed_at: datetime = Field(sa_column=_utc_column(nullable=False))


class ChargerLinkRow(SQLModel, table=True):
    """Whether a charger is connected, and whether it has been away long enough for its EVSEs
    to show UNKNOWN."""

    __tablename__ = "ocpi_charger_links"

    charger_id: str = Field(primary_key=True, max_length=48)
    connected: bool
    changed_at: datetime = Field(sa_column=_utc_column(nullable=False))
    offline: bool = Field(default=False, description="beyond the liveness timeout")


class ProjectorOffsetRow(SQLModel, table=True):
    """How far a projector has read the central system's event log."""

    __tablename__ = "ocpi_projector_offsets"

    name: str = Field(primary_key=True, max_length=32)
    offset: int = 0


class TokenRow(SQLModel, table=True):
    """A Token an eMSP pushed (or we pulled from it): ``document`` is the OCPI JSON as stored;
    the columns repeat what authorization looks up. Key: party, upper-cased uid, type."""

    __tablename__ = "ocpi_tokens"
    __table_args__ = (
        UniqueConstraint("country_code", "party_id", "uid_key", "type"),
        Index("ix_ocpi_tokens_uid", "uid_key", "type"),
    )

    id: int | None = Field(default=None, primary_key=True)
    partner_id: int = Field(
        sa_column=Column(Integer, ForeignKey("ocpi_partners.id", ondelete="CASCADE"), index=True)
    )
    country_code: str = Field(max_length=2, description="upper-cased")
    party_id: str = Field(max_length=3, description="upper-cased")
    uid_key: str = Field(max_length=36, description="upper-cased uid (CiString)")
    type: str = Field(max_length=16)
    contract_key: str = Field(max_length=36, index=True, description="upper-cased contract_id")
    alias: str | None = Field(
        default=None, max_length=20, unique=True, description="OCPP 1.6 idTag for a long uid"
    )
    last_updated: datetime = Field(sa_column=_utc_column(nullable=False))
    document: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(sa_column=_utc_column(nullable=False))


class AuthorizationRow(SQLModel, table=True):
    """One authorization decision: who owns the token and how it was authorized, for the
    Session and CDR of the transaction it started (``id`` is the decision's reference)."""

    __tablename__ = "ocpi_authorizations"

    id: str = Field(primary_key=True, max_length=36)
    charger_id: str = Field(max_length=48)
    id_token: str = Field(max_length=36)
    id_token_kind: str = Field(max_length=16)
    status: str = Field(max_length=24, description="the OCPP answer (AuthorizationStatus)")
    source: str = Field(max_length=16, description="token | operator | hub | unknown")
    partner_id: int | None = Field(default=None, description="the owner eMSP, if any")
    cdr_token: str | None = Field(default=None, sa_column=Column(Text), description="CdrToken")
    auth_method: str | None = Field(default=None, max_length=16)
    authorization_reference: str | None = Field(default=None, max_length=36)
    allowed: str | None = Field(default=None, max_length=16, description="the eMSP's answer")
    detail: str | None = Field(default=None, sa_column=Column(Text))
    command_id: int | None = Field(
        default=None, description="the START_SESSION / RESERVE_NOW whose token this was"
    )
    decided_at: datetime = Field(sa_column=Column(UtcDateTime(), nullable=False, index=True))


class TokenPullRow(SQLModel, table=True):
    """How far the tokens of a partner have been pulled from its tokens SENDER."""

    __tablename__ = "ocpi_token_pulls"

    partner_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("ocpi_partners.id", ondelete="CASCADE"), primary_key=True
        )
    )
    pulled_until: datetime | None = Field(default=None, sa_column=_utc_column())
    last_attempt_at: datetime | None = Field(default=None, sa_column=_utc_column())
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class SessionRow(SQLModel, table=True):
    """One charging session as OCPI sees it, built from a transaction's events. ``usage`` and
    the session's ``SessionPointRow``s are its timeline (``usage``: state changes, signed
    values and the count of meter points, JSON) from which periods and costs are computed
    again on every change; ``document`` the OCPI Session as last
    built (``None`` while the session is internal: not yet authorized or placed).

    A session an eMSP's command made before any transaction has no ``transaction_ref`` yet:
    PENDING after an accepted START_SESSION, RESERVATION after an accepted RESERVE_NOW
    (``reservation_ref`` is then the OCPP reservation id, ``ReservationRow.id``). The
    transaction the command leads to takes that row over (``command_id``)."""

    __tablename__ = "ocpi_sessions"
    __table_args__ = (
        UniqueConstraint("charger_id", "transaction_ref"),
        # The pages of GET /sessions: only the published ones (with a document), so that the
        # page's total is counted on the index alone, without reading the rows.
        Index(
            "ix_ocpi_sessions_partner_order",
            "partner_id",
            "last_updated",
            "id",
            sqlite_where=text("document IS NOT NULL"),
            postgresql_where=text("document IS NOT NULL"),
        ),
        # The sweep of sessions still waiting for their transaction (PENDING, RESERVATION).
        Index("ix_ocpi_sessions_waiting", "status", "transaction_ref"),
    )

    id: str = Field(primary_key=True, max_length=36)
    charger_id: str = Field(max_length=48)
    transaction_ref: str | None = Field(default=None, max_length=36)
    ocpp_evse_id: int
    ocpp_connector_id: int
    status: str = Field(max_length=16)
    command_id: int | None = Field(default=None, index=True)
    reservation_ref: int | None = Field(default=None, index=True)
    partner_id: int | None = Field(default=None, description="the token's owner eMSP")
    authorization_ref: str | None = Field(default=None, max_length=36)
    authorized: bool = False
    cdr_token: str | None = Field(default=None, sa_column=Column(Text))
    auth_method: str | None = Field(default=None, max_length=16)
    authorization_reference: str | None = Field(default=None, max_length=36)
    location_id: str | None = Field(default=None, max_length=36)
    evse_uid: str | None = Field(default=None, max_length=36)
    connector_id: str | None = Field(default=None, max_length=36)
    cdr_location: str | None = Field(default=None, sa_column=Column(Text))
    tariffs: str | None = Field(default=None, sa_column=Column(Text), description="[Tariff]")
    time_zone: str | None = Field(default=None, max_length=64)
    currency: str = Field(max_length=3)
    meter_start_wh: int | None = None
    started_at: datetime = Field(sa_column=_utc_column(nullable=False))
    ended_at: datetime | None = Field(default=None, sa_column=_utc_column())
    stop_reason: str | None = Field(default=None, max_length=32)
    usage: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    periods_sent: int = Field(default=0, description="closed periods PATCHed so far")
    last_push_at: datetime | None = Field(
        default=None, sa_column=_utc_column(), description="event time of the last push"
    )
    document: str | None = Field(default=None, sa_column=Column(Text))
    last_updated: datetime = Field(sa_column=_utc_column(nullable=False))
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))


class SessionPointRow(SQLModel, table=True):
    """A meter point of a session's timeline (``Usage.meter``: energy since the session's start
    in Wh, power in W, current in A, as exact decimal text). Points are appended as meter
    values come and never rewritten: a running session's row holds only the rest of its
    timeline (state changes, signed values) and the count of its points, so storing a meter
    value costs the same at the first point of a session as at its two-thousandth. A session's
    points are in time order by ``at``, then ``id`` (a late point after those of its time)."""

    __tablename__ = "ocpi_session_points"
    __table_args__ = (Index("ix_ocpi_session_points_session", "session_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(max_length=36)
    at: datetime = Field(sa_column=_utc_column(nullable=False))
    energy_wh: int
    power_w: str | None = Field(default=None, max_length=40)
    current_a: str | None = Field(default=None, max_length=40)


class CdrRow(SQLModel, table=True):
    """The one CDR of a completed session (its id is the session's id): immutable."""

    __tablename__ = "ocpi_cdrs"
    __table_args__ = (Index("ix_ocpi_cdrs_partner_order", "partner_id", "last_updated", "id"),)

    id: str = Field(primary_key=True, max_length=39)
    session_id: str = Field(max_length=36, unique=True)
    partner_id: int | None = None
    document: str = Field(sa_column=Column(Text, nullable=False))
    last_updated: datetime = Field(sa_column=_utc_column(nullable=False))
    location_url: str | None = Field(
        default=None, max_length=512, description="where the eMSP stored it (POST answer)"
    )


class TariffRow(SQLModel, table=True):
    """One of the operator's Tariffs, as OCPI JSON (``key``: the upper-cased id)."""

    __tablename__ = "ocpi_tariffs"
    __table_args__ = (Index("ix_ocpi_tariffs_order", "last_updated", "key"),)

    key: str = Field(primary_key=True, max_length=36)
    origin: str = Field(max_length=8, description="'site' or 'api'")
    last_updated: datetime = Field(sa_column=_utc_column(nullable=False))
    document: str = Field(sa_column=Column(Text, nullable=False))


class CommandRow(SQLModel, table=True):
    """One OCPI command an eMSP sent (reference 3.6), from its acceptance to the CommandResult
    queued for its ``response_url``. ``id`` is also the 2.0.1 ``remoteStartId`` of a
    START_SESSION. ``id_tag`` is what the charger was given for the token (its uid, or a short
    alias for OCPP 1.6), so that the transaction it starts is recognised as this command's."""

    __tablename__ = "ocpi_commands"
    __table_args__ = (Index("ix_ocpi_commands_grant", "charger_id", "id_tag", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    partner_id: int
    command: str = Field(max_length=24)
    request: str = Field(sa_column=Column(Text, nullable=False))
    response_url: str = Field(max_length=255)
    charger_id: str | None = Field(default=None, max_length=48)
    ocpp_evse_id: int | None = None
    id_tag: str | None = Field(default=None, max_length=36)
    token: str | None = Field(default=None, sa_column=Column(Text), description="OCPI Token")
    authorization_reference: str | None = Field(default=None, max_length=36)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    deadline_at: datetime = Field(sa_column=_utc_column(nullable=False))
    result: str | None = Field(default=None, max_length=24)
    detail: str | None = Field(default=None, max_length=255)
    answered_at: datetime | None = Field(default=None, sa_column=_utc_column())


class ReservationRow(SQLModel, table=True):
    """An eMSP's reservation (its ``reservation_id``, unique per eMSP party) and the CPO-unique
    OCPP reservation id it is sent to the charger as (``id``)."""

    __tablename__ = "ocpi_reservations"
    __table_args__ = (UniqueConstraint("partner_id", "reservation_id"),)

    id: int | None = Field(default=None, primary_key=True)
    partner_id: int
    reservation_id: str = Field(max_length=36)
    charger_id: str = Field(max_length=48)
    ocpp_evse_id: int | None = None
    location_id: str = Field(max_length=36)
    expires_at: datetime = Field(sa_column=_utc_column(nullable=False))
    command_id: int = Field(description="the RESERVE_NOW that made or last replaced it")
    cancelled: bool = False


class ChargingProfileRequestRow(SQLModel, table=True):
    """One chargingprofiles request an eMSP sent (reference 3.7) and answered ``ACCEPTED``,
    from then until its result is queued for ``response_url`` (``result`` set). ``kind`` is
    ``SET`` (PUT), ``ACTIVE`` (GET) or ``CLEAR`` (DELETE); ``profile_id`` the OCPP
    ``chargingProfileId`` of the session's profile (SET and CLEAR), the same for every request
    of one session: the first SET row's ``id`` (AUTOINCREMENT, never reused)."""

    __tablename__ = "ocpi_charging_profile_requests"
    __table_args__ = (
        Index("ix_ocpi_charging_profile_requests_session", "session_id", "kind"),
        Index("ix_ocpi_charging_profile_requests_open", "result", "deadline_at"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    partner_id: int
    session_id: str = Field(max_length=36)
    kind: str = Field(max_length=8)
    response_url: str = Field(max_length=255)
    request: str = Field(sa_column=Column(Text, nullable=False), description="JSON")
    profile_id: int | None = None
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    deadline_at: datetime = Field(sa_column=_utc_column(nullable=False))
    result: str | None = Field(default=None, max_length=16)
    detail: str | None = Field(default=None, max_length=255)
    answered_at: datetime | None = Field(default=None, sa_column=_utc_column())


class ActiveProfileUpdateRow(SQLModel, table=True):
    """A reason to PUT a session's ActiveChargingProfile to the eMSP that set a profile on it
    (reference 3.7): its own profile was set or cleared, or the charger reported an external
    limit (2.0.1 NotifyChargingLimit / ClearedChargingLimit). Pending while ``done_at`` is
    ``None``; the charger is asked for its composite schedule from ``next_attempt_at`` on, and
    the PUT is queued in the outbox in the transaction that sets ``done_at`` (``outcome``
    ``SENT``, or ``SKIPPED`` / ``FAILED`` with ``detail`` saying why). One answer of the charger
    closes every pending row of the session recorded before it was asked."""

    __tablename__ = "ocpi_active_profile_updates"
    __table_args__ = (
        Index("ix_ocpi_active_profile_updates_pending", "done_at", "next_attempt_at"),
        Index("ix_ocpi_active_profile_updates_session", "session_id", "done_at"),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(default=None, primary_key=True)
    session_id: str = Field(max_length=36)
    partner_id: int = Field(description="the eMSP that set a profile on the session")
    reason: str = Field(max_length=64)
    created_at: datetime = Field(sa_column=_utc_column(nullable=False))
    next_attempt_at: datetime = Field(sa_column=_utc_column(nullable=False))
    attempts: int = 0
    done_at: datetime | None = Field(default=None, sa_column=_utc_column())
    outcome: str | None = Field(default=None, max_length=8)
    detail: str | None = Field(default=None, max_length=255)
