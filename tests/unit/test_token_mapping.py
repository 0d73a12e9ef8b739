"""Pure pieces of driver authorization: the OCPI Token object and its PATCH, the mapping tables
between OCPI and OCPP (reference 4.6, design.md section 5), idTag aliases and the EVSE
restriction of a real-time answer."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from bridge.authorization import _restricted
from bridge.mapping import tokens as rules
from bridge.ocpi.tokens import (
    AllowedType,
    AuthorizationInfo,
    LocationReferences,
    Token,
    TokenType,
    WhitelistType,
    patched_token,
)
from bridge.store.locations import ChargerPlace
from bridge.store.tokens import IDTAG_MAX, alias_for
from csms.domain.model import AuthorizationStatus, EvseRef, IdToken, IdTokenKind
from csms.domain.requests import AuthorizationDecision, AuthorizationRequest, DriverMessage
from csms.ocpp16.outbound import build_id_tag_info
from csms.ocpp201.outbound import build_id_token_info

DATA = Path(__file__).parents[1] / "data" / "ocpi-examples" / "tokens"
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


def example(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DATA / name).read_text())
    return loaded


# --- the Token object ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["token_example_1_app_user.json", "token_example_2_full_rfid.json", "token_put_example.json"],
)
def test_spec_examples_parse_and_round_trip(name: str) -> None:
    token = Token.model_validate(example(name))
    again = Token.model_validate_json(token.model_dump_json(exclude_none=True))
    assert again == token
    assert token.last_updated.tzinfo is not None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "EMAID"}, "type"),
        ({"uid": "U" * 37}, "uid"),
        ({"uid": ""}, "uid"),
        ({"whitelist": "OFTEN"}, "whitelist"),
        ({"valid": 1}, "valid"),
        ({"country_code": "DEU"}, "country_code"),
        ({"party_id": "TN"}, "party_id"),
        ({"last_updated": "2026-13-01T00:00:00Z"}, "last_updated"),
    ],
)
def test_invalid_tokens_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Token.model_validate({**example("token_put_example.json"), **change})
    assert {err["loc"][0] for err in caught.value.errors()} == {field}


def test_patch_merges_and_validates_the_whole_token() -> None:
    stored = Token.model_validate(example("token_put_example.json"))
    patched = patched_token(stored, example("token_patch_example.json"))
    assert patched.valid is False
    assert patched.last_updated == datetime(2019, 6, 19, 2, 11, 11, tzinfo=UTC)
    assert patched.model_copy(update={"valid": True, "last_updated": stored.last_updated}) == stored


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"valid": False}, "last_updated"),
        ({"uid": "OTHER", "last_updated": "2026-01-01T00:00:00Z"}, "uid"),
        ({"type": "OTHER", "last_updated": "2026-01-01T00:00:00Z"}, "type"),
        ({"country_code": 12, "last_updated": "2026-01-01T00:00:00Z"}, "country_code"),
        ({"whitelist": "X", "last_updated": "2026-01-01T00:00:00Z"}, "whitelist"),
    ],
)
def test_bad_patches_are_refused(patch: dict[str, Any], message: str) -> None:
    stored = Token.model_validate(example("token_put_example.json"))
    with pytest.raises(ValueError, match=message):
        patched_token(stored, patch)


def test_authorization_info_requires_a_full_token() -> None:
    token = example("token_put_example.json")
    info = AuthorizationInfo.model_validate({"allowed": "ALLOWED", "token": token})
    assert info.allowed is AllowedType.ALLOWED
    with pytest.raises(ValidationError):
        AuthorizationInfo.model_validate({"allowed": "ALLOWED", "token": {"uid": "X"}})
    with pytest.raises(ValidationError):
        AuthorizationInfo.model_validate({"allowed": "PERHAPS", "token": token})


# --- mapping tables --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("allowed", "status", "v16", "v201"),
    [
        (AllowedType.ALLOWED, AuthorizationStatus.ACCEPTED, "Accepted", "Accepted"),
        (AllowedType.BLOCKED, AuthorizationStatus.BLOCKED, "Blocked", "Blocked"),
        (AllowedType.EXPIRED, AuthorizationStatus.EXPIRED, "Expired", "Expired"),
        (AllowedType.NO_CREDIT, AuthorizationStatus.NO_CREDIT, "Invalid", "NoCredit"),
        (
            AllowedType.NOT_ALLOWED,
            AuthorizationStatus.NOT_AT_THIS_LOCATION,
            "Invalid",
            "NotAtThisLocation",
        ),
    ],
)
def test_allowed_type_to_ocpp(
    allowed: AllowedType, status: AuthorizationStatus, v16: str, v201: str
) -> None:
    assert rules.ocpp_status(allowed) is status
    decision = AuthorizationDecision(status=status)
    assert build_id_tag_info(decision)["status"] == v16
    assert build_id_token_info(decision)["status"] == v201


def test_idtoken_kinds_to_token_types() -> None:
    assert rules.LOOKUP_TYPES[IdTokenKind.ISO14443][0] is TokenType.RFID
    assert rules.LOOKUP_TYPES[IdTokenKind.ISO15693][0] is TokenType.RFID
    assert rules.LOOKUP_TYPES[IdTokenKind.CENTRAL] == (TokenType.APP_USER, TokenType.AD_HOC_USER)
    assert rules.LOOKUP_TYPES[IdTokenKind.LOCAL] == (TokenType.OTHER,)
    assert IdTokenKind.EMAID not in rules.LOOKUP_TYPES  # looked up by contract id
    assert rules.ocpp_kind(TokenType.RFID) is IdTokenKind.ISO14443
    assert rules.ocpp_kind(TokenType.APP_USER) is IdTokenKind.CENTRAL
    assert rules.ocpp_kind(TokenType.AD_HOC_USER) is IdTokenKind.CENTRAL
    assert rules.ocpp_kind(TokenType.OTHER) is IdTokenKind.LOCAL
    assert rules.realtime_type(IdTokenKind.CENTRAL) is TokenType.APP_USER
    assert rules.realtime_type(IdTokenKind.EMAID) is TokenType.OTHER


@pytest.mark.parametrize(
    ("whitelist", "valid", "asks", "allows_on_failure", "expires"),
    [
        (WhitelistType.ALWAYS, True, False, False, False),
        (WhitelistType.ALLOWED, True, False, False, False),
        (WhitelistType.ALLOWED_OFFLINE, True, True, True, True),
        (WhitelistType.ALLOWED_OFFLINE, False, True, False, True),
        (WhitelistType.NEVER, True, True, False, True),
    ],
)
def test_whitelist_rules(
    whitelist: WhitelistType, valid: bool, asks: bool, allows_on_failure: bool, expires: bool
) -> None:
    assert rules.asks_in_real_time(whitelist) is asks
    assert rules.allows_on_failure(whitelist, valid) is allows_on_failure
    assert (rules.cache_expiry(whitelist, NOW) == NOW) is expires
    assert rules.local_status(valid) is (
        AuthorizationStatus.ACCEPTED if valid else AuthorizationStatus.BLOCKED
    )


def test_group_id_message_and_evses_reach_the_charger() -> None:
    decision = AuthorizationDecision(
        status=AuthorizationStatus.ACCEPTED,
        group_id="DF000-2001-8999",
        evse_ids=(1, 3),
        message=DriverMessage(text="Welcome back", language="en"),
        expires_at=NOW,
    )
    assert build_id_tag_info(decision) == {
        "status": "Accepted",
        "parentIdTag": "DF000-2001-8999",
        "expiryDate": "2026-11-21T12:00:00.000Z",
    }
    assert build_id_token_info(decision) == {
        "status": "Accepted",
        "groupIdToken": {"idToken": "DF000-2001-8999", "type": "Central"},
        "evseId": [1, 3],
        "personalMessage": {"format": "UTF8", "content": "Welcome back", "language": "en"},
        "cacheExpiryDateTime": "2026-11-21T12:00:00.000Z",
    }
    # 1.6 parentIdTag is at most 20 characters: a longer group id is left out.
    long_group = AuthorizationDecision(status=AuthorizationStatus.ACCEPTED, group_id="G" * 21)
    assert "parentIdTag" not in build_id_tag_info(long_group)


# --- aliases ---------------------------------------------------------------------------------


def test_aliases_fit_an_ocpp16_idtag_and_differ_per_token() -> None:
    uid = "bdf21bce-fc97-11e8-8eb2-f2801f1b9fd1"
    alias = alias_for("DE", "TNM", uid, "APP_USER")
    assert len(alias) == IDTAG_MAX
    assert alias.startswith("~")
    assert alias.isascii()
    assert alias == alias_for("de", "tnm", uid.upper(), "APP_USER")  # CiString key
    others = {
        alias_for("DE", "TNM", uid, "AD_HOC_USER"),
        alias_for("DE", "XYZ", uid, "APP_USER"),
        alias_for("DE", "TNM", uid, "APP_USER", salt=1),
    }
    assert alias not in others
    assert len(others) == 3


# --- EVSE restrictions of a real-time answer -------------------------------------------------

PLACE = ChargerPlace(location_id="LOC-1", evses=(("EVSE-A", 1), ("EVSE-B", 2)))


def request(evse: int | None) -> AuthorizationRequest:
    return AuthorizationRequest(
        charger_id="CP1",
        id_token=IdToken(value="TAG"),
        evse=EvseRef(ocpp_evse_id=evse, connector_id=1) if evse is not None else None,
    )


@pytest.mark.parametrize(
    ("refs", "evse", "expected"),
    [
        (LocationReferences(location_id="LOC-1"), None, ((), AuthorizationStatus.ACCEPTED)),
        (
            LocationReferences(location_id="loc-1", evse_uids=["evse-b"]),
            None,
            ((2,), AuthorizationStatus.ACCEPTED),
        ),
        (
            LocationReferences(location_id="LOC-1", evse_uids=["EVSE-B"]),
            2,
            ((2,), AuthorizationStatus.ACCEPTED),
        ),
        (
            LocationReferences(location_id="LOC-1", evse_uids=["EVSE-B"]),
            1,
            ((), AuthorizationStatus.NOT_AT_THIS_LOCATION),
        ),
        (
            LocationReferences(location_id="LOC-1", evse_uids=["ELSEWHERE"]),
            None,
            ((), AuthorizationStatus.NOT_AT_THIS_LOCATION),
        ),
        (
            LocationReferences(location_id="LOC-2"),
            None,
            ((), AuthorizationStatus.NOT_AT_THIS_LOCATION),
        ),
    ],
)
def test_the_emsp_may_restrict_the_evses(
    refs: LocationReferences,
    evse: int | None,
    expected: tuple[tuple[int, ...], AuthorizationStatus],
) -> None:
    assert _restricted(request(evse), refs, PLACE) == expected
