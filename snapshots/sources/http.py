"""HTTP(S) snapshot cameras: a JPEG per GET, or one part of an MJPEG stream.

This is how Hikvision (``/ISAPI/Streaming/channels/101/picture``), Dahua
(``/cgi-bin/snapshot.cgi``) and most other IP cameras expose stills. The bytes the camera sends
are returned untouched, so the stored JPEG is the camera's own encoding.

Authentication follows ``camera.auth``:

* ``basic`` / ``digest`` — send those credentials from the first request on;
* ``none`` — never send credentials;
* ``auto`` — send nothing, and on a 401 follow the ``WWW-Authenticate`` challenge (digest when
  offered, else basic); the choice is remembered for the camera's later grabs.

Credentials come from ``camera.username``/``camera.password`` or, failing that, from the URL's
user-info (``http://admin:pw@cam/...``), which is then stripped from the requested URL.

A response of type ``multipart/x-mixed-replace`` is an MJPEG stream: the first complete part is
read and the connection closed, so the same source serves snapshot and stream URLs.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
import urllib3
from requests.auth import AuthBase, HTTPBasicAuth, HTTPDigestAuth

from canteen_watch.config import CameraConfig
from snapshots.errors import AuthenticationError, CaptureTimeoutError, CorruptFrameError, SourceUnavailableError
from snapshots.sources.base import Source
from snapshots.sources.mjpeg import read_first_part

MAX_SNAPSHOT_BYTES = 32 * 1024 * 1024
"""Larger bodies are refused: no still from a camera is that big, and memory is shared."""

USER_AGENT = "canteen-watch/0.1"


def _split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """Return ``url`` without user-info, and the user and password it carried."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    clean = urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment))
    return clean, unquote(user) or None, unquote(password) if password else None


def _challenge_scheme(header: str) -> str | None:
    """Pick ``digest`` or ``basic`` from a ``WWW-Authenticate`` header (digest preferred)."""
    schemes = {m.lower() for m in re.findall(r"(?:^|,)\s*([A-Za-z]+)\s+[A-Za-z]+=", header)}
    schemes |= {m.lower() for m in re.findall(r"(?:^|,)\s*([A-Za-z]+)\s*$", header)}
    if "digest" in schemes:
        return "digest"
    if "basic" in schemes:
        return "basic"
    return None


class HttpSource(Source):
    """A camera read over HTTP(S) with one :class:`requests.Session` (connection reuse)."""

    def __init__(self, camera: CameraConfig) -> None:
        super().__init__(camera)
        self.url, url_user, url_password = _split_credentials(camera.source)
        self.username = camera.username if camera.username is not None else url_user
        self.password = camera.password if camera.password is not None else url_password
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.timeout = (camera.timeout_seconds, camera.timeout_seconds)
        self._scheme: str | None = None if camera.auth in ("auto", "none") else camera.auth

    def close(self) -> None:
        """Close the session's pooled connections."""
        self.session.close()

    # -- auth ---------------------------------------------------------------------------------
    def _auth_for(self, scheme: str | None) -> AuthBase | None:
        if scheme is None:
            return None
        if self.username is None:
            raise AuthenticationError(self.camera.id, f"{self.display_url} needs {scheme} authentication but no username/password is configured")
        password = self.password or ""
        return HTTPDigestAuth(self.username, password) if scheme == "digest" else HTTPBasicAuth(self.username, password)

    def _get(self, auth: AuthBase | None) -> requests.Response:
        try:
            return self.session.get(self.url, auth=auth, timeout=self.timeout, stream=True, allow_redirects=True)
        except requests.exceptions.Timeout as exc:
            # Same limit as capture_frame's hard deadline, whichever notices first.
            raise CaptureTimeoutError(self.camera.id, f"no frame from {self.display_url} within {self.camera.timeout_seconds:g}s ({type(exc).__name__})") from None
        except requests.exceptions.ConnectionError as exc:
            raise SourceUnavailableError(self.camera.id, f"{self.display_url}: cannot connect ({_root_cause(exc)})") from None
        except requests.exceptions.RequestException as exc:
            raise SourceUnavailableError(self.camera.id, f"{self.display_url}: request failed ({type(exc).__name__})") from None

    def _request(self) -> tuple[requests.Response, str | None]:
        """GET the URL, answering an auth challenge as ``camera.auth`` says.

        Returns:
            The response and the auth scheme sent with it (None: no credentials sent).
        """
        scheme = self._scheme
        response = self._get(self._auth_for(scheme))
        if response.status_code != 401 or self.camera.auth != "auto":
            return response, scheme
        # auto: (re)negotiate from the challenge — the camera may have changed its scheme.
        self._scheme = None
        offered = _challenge_scheme(response.headers.get("WWW-Authenticate", ""))
        if offered is None or offered == scheme:
            return response, scheme
        response.close()
        response = self._get(self._auth_for(offered))
        if response.status_code != 401:
            self._scheme = offered
        return response, offered

    # -- grab ---------------------------------------------------------------------------------
    def grab(self) -> bytes:
        """GET one JPEG (or the first part of an MJPEG stream) and return its bytes as sent.

        Raises:
            AuthenticationError: 401 after sending credentials, or credentials needed but absent.
            CaptureTimeoutError: Connect or read timeout (``camera.timeout_seconds``).
            SourceUnavailableError: Connection refused/reset or an HTTP error status.
            CorruptFrameError: The body is larger than :data:`MAX_SNAPSHOT_BYTES` or the stream
                ended before a whole part.
        """
        response, scheme = self._request()
        try:
            if response.status_code == 401:
                if scheme is None:
                    offered = response.headers.get("WWW-Authenticate", "").split(" ", 1)[0] or "no"
                    raise AuthenticationError(self.camera.id, f"{self.display_url}: HTTP 401, authentication required ({offered} challenge) and none sent (auth={self.camera.auth})")
                raise AuthenticationError(self.camera.id, f"{self.display_url}: HTTP 401, {scheme} authentication failed for user {self.username!r} (wrong username or password?)")
            if response.status_code != 200:
                raise SourceUnavailableError(self.camera.id, f"{self.display_url}: HTTP {response.status_code} {response.reason}")
            content_type = response.headers.get("Content-Type", "")
            try:
                if content_type.lower().startswith("multipart/"):
                    return read_first_part(response.raw, content_type, MAX_SNAPSHOT_BYTES)
                return self._read_body(response)
            except ValueError as exc:
                raise CorruptFrameError(self.camera.id, f"{self.display_url}: {exc}") from None
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                if _is_timeout(exc):
                    raise CaptureTimeoutError(self.camera.id, f"no frame from {self.display_url} within {self.camera.timeout_seconds:g}s (read timed out)") from None
                raise SourceUnavailableError(self.camera.id, f"{self.display_url}: connection failed while reading ({type(exc).__name__})") from None
        finally:
            response.close()

    @staticmethod
    def _read_body(response: requests.Response) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > MAX_SNAPSHOT_BYTES:
            raise ValueError(f"body of {declared} bytes exceeds {MAX_SNAPSHOT_BYTES}")
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_content(chunk_size=256 * 1024):
            size += len(chunk)
            if size > MAX_SNAPSHOT_BYTES:
                raise ValueError(f"body exceeds {MAX_SNAPSHOT_BYTES} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _is_timeout(exc: BaseException) -> bool:
    """Whether a requests/urllib3/socket error, or anything it wraps, is a timeout."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (requests.exceptions.Timeout, urllib3.exceptions.TimeoutError, TimeoutError)):
            return True
        pending.extend([current.__cause__, current.__context__, *current.args])
    return False


def _root_cause(exc: BaseException) -> str:
    """The innermost exception's text, e.g. ``[Errno 111] Connection refused``."""
    while exc.__cause__ is not None or exc.__context__ is not None:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    text = str(exc)
    # urllib3 wraps errors as "<connection object at 0x...>: Failed to establish ...": keep the tail.
    return text.rsplit(": ", 1)[-1] if ">: " in text else text
