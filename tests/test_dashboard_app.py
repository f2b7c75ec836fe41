"""The dashboard's shell through AppTest: nothing before login, login and logout, the menu of each role,
pages refusing roles outside their menu, the language switch, a disabled account logged out at once.
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from canteen_watch.auth import Role, disable_user, system_actor
from canteen_watch.dashboard.menus import PAGE_SPECS, pages_for
from canteen_watch.db.base import write_transaction
from canteen_watch.i18n import t
from canteen_watch.workflows.models import UserRow
from tests.test_dashboard_support import APP, PASSWORD, USERS, DashEnv, all_text, dash, page  # noqa: F401

EXPECTED_MENUS = {
    "manager": ["review", "rectification", "cameras"],
    "inspector": ["overview", "review", "rectification", "cameras", "institutions"],
    "registrar": ["institutions"],
    "auditor": ["audit", "models"],
    "admin": ["overview", "review", "rectification", "cameras", "institutions", "audit", "models"],
}


def _login(at, username: str, password: str):  # type: ignore[no-untyped-def]
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    return at.run()


def test_nothing_but_the_login_form_before_login(dash: DashEnv) -> None:
    dash.open_case()
    at = dash.app().run()
    assert not at.exception
    assert [ti.key for ti in at.text_input] == ["login_username", "login_password"]
    text = all_text(at)
    assert t("app.title", "en") in text
    for spec in PAGE_SPECS:
        assert t(spec.title_key, "en") not in text
        with pytest.raises(ValueError):
            at.switch_page(page(spec.id))
    assert "Case #" not in text and "cam-a" not in text


def test_login_wrong_password_then_right_then_logout(dash: DashEnv) -> None:
    at = _login(dash.app().run(), "manager", "wrong password!")
    assert [e.value for e in at.error] == [t("login.invalid", "en")]
    assert "cw_user" not in at.session_state
    at = _login(at, "Manager", PASSWORD)
    assert not at.exception
    assert at.session_state["cw_user"].id == dash.user("manager").id
    assert at.title[0].value == t("page.review", "en"), "a manager lands on the review queue"
    at.button(key="logout").click()
    at = at.run()
    assert "cw_user" not in at.session_state
    assert [ti.key for ti in at.text_input] == ["login_username", "login_password"]
    assert at.session_state["cw_lang"] == "en", "the language survives the logout"


@pytest.mark.parametrize("name", list(EXPECTED_MENUS))
def test_each_role_gets_its_menu_and_nothing_else(dash: DashEnv, name: str) -> None:
    dash.open_case()
    role = USERS[name][0]
    assert [spec.id for spec in pages_for(role)] == EXPECTED_MENUS[name]
    at = dash.app(name).run()
    assert not at.exception
    assert at.title[0].value == t(pages_for(role)[0].title_key, "en")
    for spec in PAGE_SPECS:
        if spec.id in EXPECTED_MENUS[name]:
            at.switch_page(page(spec.id)).run()
            assert not at.exception, (spec.id, [e.value for e in at.exception])
            assert at.title[0].value == t(spec.title_key, "en")
            assert not at.error, (spec.id, [e.value for e in at.error])
        else:
            with pytest.raises(ValueError):
                at.switch_page(page(spec.id))


def test_a_page_script_refuses_a_role_outside_its_menu(dash: DashEnv) -> None:
    """Even run directly (not through st.navigation), a page stops for a role without it."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP.parent / page("audit")), default_timeout=60)
    at.session_state["cw_lang"] = "en"
    at.session_state["cw_user"] = dash.user("manager")
    at.run()
    assert [e.value for e in at.error] == [t("error.page_forbidden", "en")]
    assert not at.dataframe and not at.button


def test_language_switch_chinese_by_default(dash: DashEnv) -> None:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["cw_user"] = dash.user("inspector")
    at.run()
    assert at.session_state["cw_lang"] == "zh-CN"
    assert at.title[0].value == t("page.overview", "zh-CN") == "总览"
    at.sidebar.selectbox(key="cw_lang").select("en")
    at.run()
    assert at.title[0].value == "Overview"
    assert t("role.inspector", "en") in all_text(at)


def test_a_disabled_account_is_logged_out_at_once(dash: DashEnv) -> None:
    at = dash.app("inspector").run()
    assert at.title[0].value == "Overview"
    disable_user(dash.sessions, dash.sink, system_actor("test"), dash.user("inspector").id)
    at.run()
    assert "cw_user" not in at.session_state
    assert t("login.session_ended", "en") in [w.value for w in at.warning]
    assert [ti.key for ti in at.text_input] == ["login_username", "login_password"]


def test_a_narrowed_jurisdiction_takes_effect_on_the_next_run(dash: DashEnv) -> None:
    case = dash.open_case("pest", "cam-a")
    at = dash.app("inspector").run().switch_page(page("review")).run()
    assert f"Case #{case.id}" in all_text(at)
    with write_transaction(dash.sessions) as session:
        from canteen_watch.workflows.models import UserScopeRow

        session.execute(update(UserScopeRow).where(UserScopeRow.user_id == dash.user("inspector").id).values(ref="North"))
    at.button(key="rv_confirm").click()
    at.run()
    assert f"Case #{case.id}" not in all_text(at)
    assert dash.ledger(f"violation:{case.id}") == [("violation.opened", "system:workflows")], "the stale button did nothing"
    assert at.session_state["cw_user"].districts == frozenset({"North"})


def test_a_locked_account_is_told_so(dash: DashEnv) -> None:
    with write_transaction(dash.sessions) as session:
        from datetime import timedelta

        from canteen_watch.core import utcnow

        session.execute(update(UserRow).where(UserRow.username == "auditor").values(locked_until=utcnow() + timedelta(minutes=10)))
    at = _login(dash.app().run(), "auditor", PASSWORD)
    assert "cw_user" not in at.session_state
    assert at.error and at.error[0].value.startswith(t("login.locked", "en").split("{")[0])


def test_roles_cover_every_service_role() -> None:
    assert {role for spec in PAGE_SPECS for role in spec.roles} == set(Role)


def test_single_sign_on_maps_to_the_local_account(dash: DashEnv) -> None:
    """With an ``[auth]`` section in the secrets, an identity-provider login opens the local account of that name."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=60)
    at.session_state["cw_lang"] = "en"
    at.secrets["auth"] = {"redirect_uri": "http://127.0.0.1/oauth2callback", "cookie_secret": "x" * 32, "client_id": "cw", "client_secret": "s", "server_metadata_url": "https://idp.invalid/.well-known/openid-configuration"}
    at.user = {"is_logged_in": False}
    at.run()
    assert t("login.sso", "en") in [b.label for b in at.button]
    at.user = {"is_logged_in": True, "email": "registrar@market-regulator.example"}
    at.run()
    assert at.session_state["cw_user"].id == dash.user("registrar").id
    assert at.title[0].value == t("page.institutions", "en")
    unknown = AppTest.from_file(str(APP), default_timeout=60)
    unknown.session_state["cw_lang"] = "en"
    unknown.secrets["auth"] = dict(at.secrets["auth"]) if "auth" in at.secrets else {"client_id": "cw"}
    unknown.user = {"is_logged_in": True, "email": "stranger@example.org"}
    unknown.run()
    assert "cw_user" not in unknown.session_state
    assert t("login.sso_unknown", "en") in [w.value for w in unknown.warning]
