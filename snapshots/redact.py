"""Keep camera passwords out of messages and logs."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

MASK = "***"
_SECRET_QUERY_KEYS = re.compile(r"pass|pwd|secret|token|key|auth", re.IGNORECASE)


def mask_url(url: str) -> str:
    """Return ``url`` with any password in the user-info or the query replaced by ``***``.

    ``rtsp://admin:s3cret@10.0.0.5/Streaming`` becomes ``rtsp://admin:***@10.0.0.5/Streaming``;
    ``http://cam/snap.cgi?user=admin&pwd=s3cret`` becomes ``http://cam/snap.cgi?user=admin&pwd=***``.
    Unparseable input is returned with everything between ``//`` and ``@`` masked.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, has_password, _ = userinfo.partition(":")
            netloc = f"{user}:{MASK}@{hostport}" if has_password else f"{user}@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(_SECRET_QUERY_KEYS.search(k) for k, _ in pairs):
                query = urlencode([(k, MASK if _SECRET_QUERY_KEYS.search(k) else v) for k, v in pairs], safe="*")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return re.sub(r"//[^/@]*@", f"//{MASK}@", url)


def scrub(text: str, *secrets: str | None) -> str:
    """Replace every occurrence of each secret (plain and URL-quoted) in ``text`` by ``***``.

    Secrets shorter than 3 characters are left alone: replacing them would mangle ordinary
    words without protecting anything real.
    """
    for secret in secrets:
        if not secret or len(secret) < 3:
            continue
        for form in {secret, quote(secret, safe=""), quote(secret)}:
            text = text.replace(form, MASK)
    return text


def url_secrets(url: str) -> list[str]:
    """The password and secret-looking query values carried by ``url`` (for :func:`scrub`)."""
    try:
        parts = urlsplit(url)
        found = [parts.password] if parts.password else []
        found += [v for k, v in parse_qsl(parts.query, keep_blank_values=False) if _SECRET_QUERY_KEYS.search(k)]
        return [unquote(s) for s in found]
    except ValueError:
        return []
