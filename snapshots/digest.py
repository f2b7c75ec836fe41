"""Server side of HTTP basic and digest authentication (RFC 7617, RFC 7616 MD5 + qop=auth).

Just enough of a camera's login for the simulated cameras: a stateless nonce (timestamp + HMAC
with a per-server secret, valid for :data:`NONCE_TTL_SECONDS`), ``qop="auth"``, MD5 — what
Hikvision and Dahua firmware offer and what ``requests.auth.HTTPDigestAuth`` speaks. Nonce-count
replay tracking is out of scope.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time

NONCE_TTL_SECONDS = 300
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()  # noqa: S324 - RFC 7616 MD5 by design


def parse_auth_params(header_value: str) -> dict[str, str]:
    """Parse ``key=value, key="quoted value"`` pairs of an ``Authorization: Digest`` header."""
    return {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)).replace('\\"', '"') for m in _PARAM.finditer(header_value)}


class Authenticator:
    """Checks ``Authorization`` headers for one user, with basic or digest auth.

    Args:
        username: The only accepted user.
        password: Its password.
        scheme: ``"basic"`` or ``"digest"``.
        realm: The protection space shown in the challenge.
    """

    def __init__(self, username: str, password: str, scheme: str = "digest", realm: str = "IP Camera") -> None:
        if scheme not in ("basic", "digest"):
            raise ValueError(f"scheme must be basic or digest, got {scheme!r}")
        self.username = username
        self.password = password
        self.scheme = scheme
        self.realm = realm
        self._secret = secrets.token_bytes(16)
        self.opaque = secrets.token_hex(8)

    # -- nonces -------------------------------------------------------------------------------
    def new_nonce(self, now: float | None = None) -> str:
        """A nonce that carries its issue time and proves we issued it."""
        stamp = f"{now if now is not None else time.time():.3f}"
        mac = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        return base64.b64encode(f"{stamp}:{mac}".encode()).decode()

    def nonce_state(self, nonce: str, now: float | None = None) -> str:
        """``"valid"``, ``"stale"`` (ours but expired) or ``"invalid"``."""
        try:
            stamp, mac = base64.b64decode(nonce, validate=True).decode().split(":", 1)
            issued = float(stamp)
        except (ValueError, UnicodeDecodeError):
            return "invalid"
        expected = hmac.new(self._secret, stamp.encode(), hashlib.sha256).hexdigest()[:32]
        if not hmac.compare_digest(mac, expected):
            return "invalid"
        age = (now if now is not None else time.time()) - issued
        # The stamp is rounded to milliseconds, so a fresh nonce may look up to 0.5 ms "young".
        return "valid" if -1.0 <= age <= NONCE_TTL_SECONDS else "stale"

    # -- challenge / check --------------------------------------------------------------------
    def challenge(self, stale: bool = False) -> str:
        """The ``WWW-Authenticate`` header value for a 401."""
        if self.scheme == "basic":
            return f'Basic realm="{self.realm}", charset="UTF-8"'
        header = f'Digest realm="{self.realm}", qop="auth", algorithm=MD5, nonce="{self.new_nonce()}", opaque="{self.opaque}"'
        return header + (", stale=true" if stale else "")

    def check(self, method: str, uri: str, authorization: str | None) -> tuple[bool, bool]:
        """Verify a request's ``Authorization`` header.

        Args:
            method: Request method, e.g. ``GET``.
            uri: The request target as sent (path and query).
            authorization: The header value, or None when absent.

        Returns:
            ``(ok, stale)``: whether the credentials are right, and whether a digest failed only
            because its nonce expired (the client should retry with the new nonce).
        """
        if not authorization:
            return False, False
        kind, _, rest = authorization.strip().partition(" ")
        if self.scheme == "basic":
            if kind.lower() != "basic":
                return False, False
            try:
                user, _, password = base64.b64decode(rest.strip(), validate=True).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return False, False
            ok = hmac.compare_digest(user.encode(), self.username.encode()) & hmac.compare_digest(password.encode(), self.password.encode())
            return bool(ok), False
        if kind.lower() != "digest":
            return False, False
        params = parse_auth_params(rest)
        required = ("username", "realm", "nonce", "uri", "response", "qop", "nc", "cnonce")
        if any(k not in params for k in required) or params["qop"] != "auth":
            return False, False
        if params.get("algorithm", "MD5").upper() != "MD5" or params["realm"] != self.realm or params["uri"] != uri:
            return False, False
        if params["username"] != self.username:
            return False, False
        state = self.nonce_state(params["nonce"])
        if state == "invalid":
            return False, False
        ha1 = _md5(f"{self.username}:{self.realm}:{self.password}")
        ha2 = _md5(f"{method}:{params['uri']}")
        expected = _md5(f"{ha1}:{params['nonce']}:{params['nc']}:{params['cnonce']}:auth:{ha2}")
        if not hmac.compare_digest(expected, params["response"].lower()):
            return False, False
        return state == "valid", state == "stale"
