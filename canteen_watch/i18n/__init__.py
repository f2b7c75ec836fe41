"""Message catalogue of the dashboard: Simplified Chinese (default) and English.

Usage::

    from canteen_watch.i18n import t, set_language
    set_language("en")
    t("review.confirm")                      # "Confirm"
    t("review.done", count=3)                # "3 cases reviewed"
    t("label.pest")                          # violation names, states, roles… are keys too
    t_value("state", "open")                 # "Open"; an unknown value is shown as it is

Both catalogues (:mod:`.zh_CN`, :mod:`.en`) are plain dicts with the same keys (a test checks
it). The current language is a context variable: the dashboard sets it at the start of every
script run (each run has its own thread), so each browser session keeps its own language.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import Any

from canteen_watch.i18n import en, zh_CN

log = logging.getLogger(__name__)

DEFAULT_LANGUAGE = "zh-CN"
#: Language code -> its own name (for the language switch).
LANGUAGES: dict[str, str] = {"zh-CN": "中文", "en": "English"}
CATALOGUES: dict[str, dict[str, str]] = {"zh-CN": zh_CN.MESSAGES, "en": en.MESSAGES}

_language: ContextVar[str] = ContextVar("canteen_watch_language")
#: The language set last in any thread: the fallback for threads that never set one (e.g. a
#: test harness formatting widget options outside the script thread).
_last_set = DEFAULT_LANGUAGE


def set_language(language: str) -> str:
    """Make ``language`` current in this thread/context (unknown codes fall back to Chinese); returns the code in use."""
    global _last_set
    code = language if language in CATALOGUES else DEFAULT_LANGUAGE
    _language.set(code)
    _last_set = code
    return code


def get_language() -> str:
    """The current language code."""
    return _language.get(_last_set)


def has(key: str, language: str | None = None) -> bool:
    """True when the catalogue has ``key``."""
    return key in CATALOGUES[language or get_language()]


def t(key: str, /, _lang: str | None = None, **values: Any) -> str:
    """The message ``key`` in the current language, with ``{name}`` fields filled from ``values``.

    A key missing from the current catalogue falls back to Chinese, then to the key itself
    (logged, so a forgotten key is visible but never breaks a page).
    """
    catalogue = CATALOGUES.get(_lang or get_language(), CATALOGUES[DEFAULT_LANGUAGE])
    text = catalogue.get(key)
    if text is None:
        text = CATALOGUES[DEFAULT_LANGUAGE].get(key)
        if text is None:
            log.warning("no message %r in the catalogue", key)
            return key
    if values:
        try:
            return text.format(**values)
        except (KeyError, IndexError, ValueError):
            log.warning("message %r does not take %s", key, sorted(values))
            return text
    return text


def t_value(kind: str, value: object, /, _lang: str | None = None) -> str:
    """Translate a coded value (``state``, ``label``, ``role``…); unknown values are shown as they are."""
    if value is None:
        return ""
    key = f"{kind}.{value}"
    return t(key, _lang) if key in CATALOGUES.get(_lang or get_language(), {}) or key in CATALOGUES[DEFAULT_LANGUAGE] else str(value)


__all__ = ["CATALOGUES", "DEFAULT_LANGUAGE", "LANGUAGES", "get_language", "has", "set_language", "t", "t_value"]
