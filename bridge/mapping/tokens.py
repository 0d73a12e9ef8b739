"""Pure mapping between OCPP identifiers and OCPI Tokens (reference 4.6, design.md section 5).

- OCPP 2.0.1 idToken types: RFID <-> ISO14443 (ISO15693 read as RFID too), APP_USER and
  AD_HOC_USER <-> Central, eMAID <-> the token's ``contract_id``, OTHER <-> Local (also
  KeyCode and MacAddress). An OCPP 1.6 idTag is read as ISO14443; since a 1.6 charger also
  presents app users' ids given to it by a remote start, ISO14443 falls back to the other
  types after RFID.
- OCPI ``AllowedType`` -> the OCPP status (the 1.6 adapter narrows NoCredit and
  NotAtThisLocation to Invalid).
"""

from __future__ import annotations

from datetime import datetime

from bridge.ocpi.tokens import AllowedType, TokenType, WhitelistType
from csms.domain.model import AuthorizationStatus, IdTokenKind

_RFID_FIRST = (TokenType.RFID, TokenType.APP_USER, TokenType.AD_HOC_USER, TokenType.OTHER)

LOOKUP_TYPES: dict[IdTokenKind, tuple[TokenType, ...]] = {
    IdTokenKind.ISO14443: _RFID_FIRST,
    IdTokenKind.ISO15693: _RFID_FIRST,
    IdTokenKind.CENTRAL: (TokenType.APP_USER, TokenType.AD_HOC_USER),
    IdTokenKind.LOCAL: (TokenType.OTHER,),
    IdTokenKind.KEY_CODE: (TokenType.OTHER,),
    IdTokenKind.MAC_ADDRESS: (TokenType.OTHER,),
}
"""OCPI token types an OCPP idToken of each kind may be, most likely first. ``eMAID`` is
looked up by contract id and ``NoAuthorization`` is no token at all."""

_OCPP_KIND: dict[TokenType, IdTokenKind] = {
    TokenType.RFID: IdTokenKind.ISO14443,
    TokenType.APP_USER: IdTokenKind.CENTRAL,
    TokenType.AD_HOC_USER: IdTokenKind.CENTRAL,
    TokenType.OTHER: IdTokenKind.LOCAL,
}

_STATUS: dict[AllowedType, AuthorizationStatus] = {
    AllowedType.ALLOWED: AuthorizationStatus.ACCEPTED,
    AllowedType.BLOCKED: AuthorizationStatus.BLOCKED,
    AllowedType.EXPIRED: AuthorizationStatus.EXPIRED,
    AllowedType.NO_CREDIT: AuthorizationStatus.NO_CREDIT,
    AllowedType.NOT_ALLOWED: AuthorizationStatus.NOT_AT_THIS_LOCATION,
}


def ocpp_status(allowed: AllowedType) -> AuthorizationStatus:
    return _STATUS[allowed]


def ocpp_kind(token_type: TokenType) -> IdTokenKind:
    """The 2.0.1 idToken type a charger is given for an OCPI token (remote start, lists)."""
    return _OCPP_KIND[token_type]


def realtime_type(kind: IdTokenKind) -> TokenType:
    """The ``?type=`` of a real-time authorization for a token we do not know."""
    return LOOKUP_TYPES.get(kind, (TokenType.OTHER,))[0]


def asks_in_real_time(whitelist: WhitelistType) -> bool:
    """ALLOWED_OFFLINE and NEVER tokens are authorized by their eMSP; ALWAYS and ALLOWED here."""
    return whitelist in (WhitelistType.ALLOWED_OFFLINE, WhitelistType.NEVER)


def allows_on_failure(whitelist: WhitelistType, valid: bool) -> bool:
    """Whether a real-time request that got no usable answer still lets the driver charge:
    only a valid ALLOWED_OFFLINE token (NEVER rejects; ``valid=false`` rejects)."""
    return whitelist is WhitelistType.ALLOWED_OFFLINE and valid


def cache_expiry(whitelist: WhitelistType, now: datetime) -> datetime | None:
    """Until when the charger may cache an answer: tokens the eMSP must authorize expire at
    once, so that the charger's authorization cache never bypasses the eMSP."""
    return now if asks_in_real_time(whitelist) else None


def local_status(valid: bool) -> AuthorizationStatus:
    """The answer for a token decided locally (ALWAYS, ALLOWED, or a failed real-time call of
    an ALLOWED_OFFLINE token)."""
    return AuthorizationStatus.ACCEPTED if valid else AuthorizationStatus.BLOCKED
