"""The dashboard's entry point: language, login, role menu, logout.

``streamlit run streamlit_app.py`` calls :func:`main` on every script run. Nothing but the login
form is registered before a user has logged in; afterwards ``st.navigation`` gets exactly the
pages of the user's role (:mod:`canteen_watch.dashboard.menus`). The user is re-read from the
database on every run, so a disabled account is logged out at once.

Local accounts log in with user name and password (Argon2, throttled in the database by
:func:`canteen_watch.auth.authenticate`). When Streamlit's secrets have an ``[auth]`` section, an
OIDC login (``st.login``) is offered too; the identity provider's ``preferred_username`` (or the
e-mail address's local part) must name an active local account, which supplies the role.
"""

from __future__ import annotations

import logging

import streamlit as st

from canteen_watch.auth import AccountDisabled, AccountLocked, AuthenticationError, InvalidCredentials, User, authenticate
from canteen_watch.config import ConfigError
from canteen_watch.dashboard import queries
from canteen_watch.dashboard.menus import pages_for
from canteen_watch.dashboard.widgets import LANG_KEY, USER_KEY, fmt_dt, get_services, show_error
from canteen_watch.i18n import DEFAULT_LANGUAGE, LANGUAGES, set_language, t, t_value
from canteen_watch.workflows.errors import PermissionDenied

log = logging.getLogger(__name__)
SSO_KEY = "cw_sso"


def language_switch() -> str:
    """The language selector in the sidebar; sets the catalogue language for this run."""
    if st.session_state.get(LANG_KEY) not in LANGUAGES:
        st.session_state[LANG_KEY] = DEFAULT_LANGUAGE
    code = st.sidebar.selectbox("语言 / Language", list(LANGUAGES), format_func=LANGUAGES.__getitem__, key=LANG_KEY)
    return set_language(code)


def sso_configured() -> bool:
    """True when ``st.secrets`` has an ``[auth]`` section (OIDC through ``st.login``)."""
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file at all
        return False


def _sso_logged_in() -> bool:
    try:
        return bool(st.user.is_logged_in)
    except Exception:  # noqa: BLE001
        return False


def _sso_user(services) -> User | None:  # type: ignore[no-untyped-def]
    """The local account of the identity-provider login, if there is one."""
    candidates = []
    for claim in ("preferred_username", "email"):
        value = st.user.get(claim) if hasattr(st.user, "get") else None
        if isinstance(value, str) and value:
            candidates += [value, value.split("@", 1)[0]] if claim == "email" else [value]
    for name in candidates:
        user = queries.user_for_sso(services.sessions, name)
        if user is not None:
            return user
    return None


def session_user(services) -> User | None:  # type: ignore[no-untyped-def]
    """The logged-in user, re-read from the database (None before login or once disabled)."""
    user = st.session_state.get(USER_KEY)
    if not isinstance(user, User) and sso_configured() and _sso_logged_in():
        user = _sso_user(services)
        if user is None:
            return None
        st.session_state[USER_KEY] = user
        st.session_state[SSO_KEY] = True
    if not isinstance(user, User):
        return None
    try:
        fresh = queries.refresh_user(services.sessions, user)
    except PermissionDenied:
        st.session_state.pop(USER_KEY, None)
        st.session_state["cw_notice"] = t("login.session_ended")
        return None
    st.session_state[USER_KEY] = fresh
    return fresh


def login_page() -> None:
    """The only page shown before login."""
    services = get_services()
    st.title(t("app.title"))
    st.caption(t("app.subtitle"))
    notice = st.session_state.pop("cw_notice", None)
    if notice:
        st.warning(notice)
    if sso_configured() and _sso_logged_in():
        st.warning(t("login.sso_unknown"))
        st.button(t("login.logout"), key="sso_logout", on_click=st.logout)
        return
    with st.form("login", clear_on_submit=False):
        username = st.text_input(t("login.username"), key="login_username", autocomplete="username")
        password = st.text_input(t("login.password"), type="password", key="login_password", autocomplete="current-password")
        submitted = st.form_submit_button(t("login.submit"), type="primary")
    if submitted:
        try:
            user = authenticate(services.sessions, username or "", password or "", policy=services.login_policy, sink=services.sink)
        except AccountLocked as exc:
            st.error(t("login.locked", until=fmt_dt(exc.locked_until, services)))
        except AccountDisabled:
            st.error(t("login.disabled"))
        except InvalidCredentials as exc:
            st.error(t("login.invalid") + (" " + t("login.now_locked", until=fmt_dt(exc.locked_until, services)) if exc.locked_until else ""))
        except AuthenticationError as exc:
            show_error(exc)
        else:
            st.session_state[USER_KEY] = user
            st.session_state.pop("login_password", None)
            st.rerun()
    if sso_configured():
        st.divider()
        st.button(t("login.sso"), key="sso_login", on_click=st.login)


def logout() -> None:
    """Forget the session's user (and end the identity-provider session)."""
    for key in list(st.session_state.keys()):
        if key != "cw_lang":
            del st.session_state[key]
    if sso_configured() and _sso_logged_in():
        st.logout()


def account_sidebar(user: User) -> None:
    """Who is logged in, with which role and jurisdiction, and the logout button."""
    with st.sidebar:
        st.divider()
        st.markdown(f"**{t('account.user')}:** `{user.username}`")
        st.markdown(f"**{t('account.role')}:** {t_value('role', user.role.value)}")
        scopes = ", ".join(scope_text(s) for s in user.scopes) or "—"
        st.caption(f"{t('account.scope')}: {scopes}")
        st.button(t("login.logout"), key="logout", on_click=logout, icon=":material/logout:")


def scope_text(scope) -> str:  # type: ignore[no-untyped-def]
    """``全市`` / ``区 Central`` / ``站点 school-001``."""
    level = scope.level.value
    if level == "city":
        return t("scope.city")
    return t(f"scope.{level}", ref=scope.ref)


def main() -> None:
    """One script run of the dashboard."""
    st.set_page_config(page_title="canteen-watch", page_icon=":material/restaurant:", layout="wide")
    language_switch()
    try:
        services = get_services()
    except ConfigError as exc:
        st.error(t("app.config_error"))
        st.code(str(exc))
        st.stop()
    user = session_user(services)
    if user is None:
        st.navigation([st.Page(login_page, title=t("page.login"), icon=":material/login:", url_path="login", default=True)], position="hidden").run()
        return
    specs = pages_for(user.role)
    pages = [st.Page(spec.path, title=t(spec.title_key), icon=spec.icon, url_path=spec.id, default=index == 0) for index, spec in enumerate(specs)]
    navigation = st.navigation({t("nav.menu"): pages})
    account_sidebar(user)
    navigation.run()
