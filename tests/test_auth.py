"""Users, passwords, login throttling, the CLI, and the RBAC matrix role × jurisdiction × action.

The matrix is written out by hand below (not derived from ``auth.POLICY``) and every cell is
asserted twice: against :func:`canteen_watch.auth.can`, and through the real service function on
SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from canteen_watch.auth import (
    AccountDisabled,
    AccountLocked,
    Action,
    InvalidCredentials,
    Role,
    SiteRef,
    User,
    authenticate,
    can,
    change_password,
    disable_user,
    list_users,
    refresh_actor,
    set_user_active,
)
from canteen_watch.auth_cli import user_app
from canteen_watch.config import StorageConfig
from canteen_watch.db.base import write_transaction
from canteen_watch.db.models import SiteRow
from canteen_watch.reports import export_violations_xlsx
from canteen_watch.registry.institutions import get_institution, record_inspection, register_institution, update_institution
from canteen_watch.storage import SnapshotStore
from canteen_watch.workflows.errors import ConflictError, InputError, PermissionDenied
from canteen_watch.workflows.evidence import set_evidence_hold, verify_evidence
from canteen_watch.workflows.rectification import recheck_rectification, submit_rectification
from canteen_watch.workflows.tiers import LoginPolicy
from canteen_watch.workflows.violations import review_violation, violation_detail
from tests.test_registry import sample
from tests.test_workflows_support import (  # noqa: F401
    PASSWORD,
    S3_ACCESS,
    S3_SECRET,
    T0,
    WorkflowEnv,
    jpeg_bytes,
    make_env,
    scratch_database,
    wf,
    wf_sqlite,
)

# ------------------------------------------------------------------------------------- the matrix

#: Targets relative to the test users: the manager's own site, another site of the Central
#: district, and a site of the North district.
OWN, SAME_DISTRICT, OTHER_DISTRICT = "own_site", "same_district", "other_district"
TARGETS = {OWN: ("s-a", "Central"), SAME_DISTRICT: ("s-b", "Central"), OTHER_DISTRICT: ("s-c", "North")}
ALL_TARGETS = {OWN, SAME_DISTRICT, OTHER_DISTRICT}
CENTRAL = {OWN, SAME_DISTRICT}
SITE_ACTIONS = [a for a in Action if a not in (Action.USER_READ, Action.USER_MANAGE, Action.ENDPOINT_MANAGE)]
GLOBAL_ACTIONS = [Action.USER_READ, Action.USER_MANAGE, Action.ENDPOINT_MANAGE]
#: Users of the matrix: manager of s-a; inspector and registrar of Central; auditor and admin of the city.
MATRIX_USERS = {"manager": (Role.MANAGER, ("site:s-a",)), "inspector": (Role.INSPECTOR, ("district:Central",)), "registrar": (Role.REGISTRAR, ("district:Central",)), "auditor": (Role.AUDITOR, ()), "admin": (Role.ADMIN, ())}

A = Action
EXPECTED: dict[str, dict[Action, set[str]]] = {
    "admin": {**{a: ALL_TARGETS for a in SITE_ACTIONS}, A.USER_READ: {"-"}, A.USER_MANAGE: {"-"}, A.ENDPOINT_MANAGE: {"-"}},
    "auditor": {A.VIOLATION_READ: ALL_TARGETS, A.EVIDENCE_VERIFY: ALL_TARGETS, A.INSTITUTION_READ: ALL_TARGETS, A.REPORT_EXPORT: ALL_TARGETS, A.USER_READ: {"-"}},
    "registrar": {A.INSTITUTION_READ: CENTRAL, A.INSTITUTION_WRITE: CENTRAL, A.VIOLATION_READ: CENTRAL, A.REPORT_EXPORT: CENTRAL},
    "inspector": {
        A.VIOLATION_READ: CENTRAL, A.VIOLATION_REVIEW: CENTRAL, A.RECTIFICATION_RECHECK: CENTRAL, A.EVIDENCE_HOLD: CENTRAL,
        A.EVIDENCE_VERIFY: CENTRAL, A.INSTITUTION_READ: CENTRAL, A.INSPECTION_RECORD: CENTRAL, A.REPORT_EXPORT: CENTRAL,
    },
    "manager": {A.VIOLATION_READ: {OWN}, A.VIOLATION_REVIEW: {OWN}, A.RECTIFICATION_SUBMIT: {OWN}, A.INSTITUTION_READ: {OWN}, A.REPORT_EXPORT: {OWN}},
}
SITE_CELLS = [(role, action, target) for role in MATRIX_USERS for action in SITE_ACTIONS for target in TARGETS]
GLOBAL_CELLS = [(role, action) for role in MATRIX_USERS for action in GLOBAL_ACTIONS]


def _user(role_name: str) -> User:
    from canteen_watch.auth import Scope

    role, scopes = MATRIX_USERS[role_name]
    parsed = tuple(Scope.parse(s) for s in scopes) or (Scope.parse("city"),)
    return User(id=1, username=role_name, role=role, scopes=parsed)


@pytest.mark.parametrize(("role", "action", "target"), SITE_CELLS, ids=lambda v: getattr(v, "value", v))
def test_policy_matrix_site_actions(role: str, action: Action, target: str) -> None:
    site_id, district = TARGETS[target]
    allowed = target in EXPECTED[role].get(action, set())
    assert can(_user(role), action, SiteRef(district=district, site_id=site_id)) is allowed


@pytest.mark.parametrize(("role", "action"), GLOBAL_CELLS, ids=lambda v: getattr(v, "value", v))
def test_policy_matrix_global_actions(role: str, action: Action) -> None:
    assert can(_user(role), action) is ("-" in EXPECTED[role].get(action, set()))


def test_disabled_users_can_do_nothing() -> None:
    import dataclasses

    for role in MATRIX_USERS:
        user = dataclasses.replace(_user(role), active=False)
        assert not any(can(user, action, SiteRef("Central", "s-a")) for action in Action)


# ------------------------------------------------------------------------------------- the matrix through the services


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def matrix_env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, s3_server) -> Iterator[tuple[WorkflowEnv, SnapshotStore]]:  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("matrix")
    with scratch_database(request.param, folder) as url:
        env = make_env(url, users=False)
        with write_transaction(env.sessions) as session:  # every target site is a care institution here
            for site_id, _district in TARGETS.values():
                session.get(SiteRow, site_id).kind = "care_institution"
        for index, (site_id, district) in enumerate(TARGETS.values()):
            register_institution(env.sessions, env.sink, env.system, sample(900 + index, site_id=site_id, district=district), now=T0)
        for name, (role, scopes) in MATRIX_USERS.items():
            env.users[name] = env.quick_user(name, role, scopes)
        config = StorageConfig(endpoint=s3_server.endpoint, access_key=S3_ACCESS, secret_key=S3_SECRET, bucket=f"m-{uuid.uuid4().hex[:12]}", timeout_seconds=2.0)
        store = SnapshotStore(config, folder / "spool", endpoint=s3_server.endpoint)
        store.ensure_bucket()
        yield env, store
        env.engine.dispose()


_case_hours = itertools.count()


def _case(env: WorkflowEnv, store: SnapshotStore, site_id: str, state: str) -> int:
    camera = {"s-a": "cam-a", "s-b": "cam-b", "s-c": "cam-c"}[site_id]
    _sid, cases = env.snapshot(camera, T0 + next(_case_hours) * timedelta(hours=1), ["pest"])  # an hour apart: never folded
    case_id = cases[0].id
    if state in ("due", "submitted"):
        review_violation(env.sessions, env.sink, env.system, case_id, outcome="confirmed", now=T0)
    if state == "submitted":
        submit_rectification(env.sessions, env.sink, store, env.system, case_id, note="done", photo=jpeg_bytes(), now=T0)
    return case_id


SERVICE: dict[Action, Callable[[WorkflowEnv, SnapshotStore, User, str], object]] = {
    A.VIOLATION_READ: lambda env, st, user, site: violation_detail(env.sessions, user, _case(env, st, site, "open")),
    A.VIOLATION_REVIEW: lambda env, st, user, site: review_violation(env.sessions, env.sink, user, _case(env, st, site, "open"), outcome="confirmed", now=T0),
    A.RECTIFICATION_SUBMIT: lambda env, st, user, site: submit_rectification(env.sessions, env.sink, st, user, _case(env, st, site, "due"), note="n", photo=jpeg_bytes(), now=T0),
    A.RECTIFICATION_RECHECK: lambda env, st, user, site: recheck_rectification(env.sessions, env.sink, user, _case(env, st, site, "submitted"), accepted=True, now=T0),
    A.EVIDENCE_HOLD: lambda env, st, user, site: set_evidence_hold(env.sessions, env.sink, st, user, _case(env, st, site, "open"), hold=True, reason="court", now=T0),
    A.EVIDENCE_VERIFY: lambda env, st, user, site: verify_evidence(env.sessions, st, user, _case(env, st, site, "open")),
    A.INSTITUTION_READ: lambda env, st, user, site: get_institution(env.sessions, user, site),
    A.INSTITUTION_WRITE: lambda env, st, user, site: update_institution(env.sessions, env.sink, user, site, {"capacity": 1 + uuid.uuid4().int % 500}, reason="matrix", now=T0),
    A.INSPECTION_RECORD: lambda env, st, user, site: record_inspection(env.sessions, env.sink, user, site, outcome="pass", findings=[], now=T0 + timedelta(days=1)),
    A.REPORT_EXPORT: lambda env, st, user, site: export_violations_xlsx(env.sessions, user, site_id=site, start=T0 - timedelta(days=1), end=T0 + timedelta(days=400), now=T0),
}


@pytest.mark.s3
@pytest.mark.parametrize(("role", "action", "target"), SITE_CELLS, ids=lambda v: getattr(v, "value", v))
def test_service_matrix(matrix_env: tuple[WorkflowEnv, SnapshotStore], role: str, action: Action, target: str) -> None:
    env, store = matrix_env
    site_id, _district = TARGETS[target]
    user = env.user(role)
    if target in EXPECTED[role].get(action, set()):
        SERVICE[action](env, store, user, site_id)
    else:
        with pytest.raises(PermissionDenied):
            SERVICE[action](env, store, user, site_id)


# ------------------------------------------------------------------------------------- user management


def test_user_management_through_the_service(wf_sqlite: WorkflowEnv) -> None:
    env = wf_sqlite
    created = env.add_user("Li.Na", Role.INSPECTOR, ["district:North", "district:Central"])
    assert created.username == "li.na" and {str(s) for s in created.scopes} == {"district:North", "district:Central"}
    assert env.ledger_actions(f"user:{created.id}") == ["user.changed"]
    assert "li.na" not in env.ledger_payloads(f"user:{created.id}")[0], "user names are not ledgered"
    with pytest.raises(ConflictError, match="taken"):
        env.add_user("LI.NA", Role.AUDITOR)
    for kwargs, message in (
        ({"username": "x"}, "username"),
        ({"username": "robert'); drop table users;--"}, "username"),
        ({"username": "a" * 65}, "username"),
        ({"role": "superuser"}, "unknown role"),
        ({"role": Role.MANAGER, "scopes": ["district:Central"]}, "may hold site scopes"),
        ({"role": Role.MANAGER, "scopes": ["site:nope"]}, "no site 'nope'"),
        ({"role": Role.MANAGER, "scopes": []}, "needs at least one scope"),
        ({"role": Role.INSPECTOR, "scopes": ["site:s-a"]}, "may hold city, district scopes"),
        ({"password": "short"}, "at least 10"),
        ({"password": "ten chars\x00!"}, "control character"),
    ):
        args = {"username": "newuser", "role": Role.AUDITOR, "scopes": [], "password": PASSWORD} | kwargs
        with pytest.raises(InputError, match=message):
            from canteen_watch.auth import add_user

            add_user(env.sessions, env.sink, env.system, args["username"], args["password"], args["role"], args["scopes"])
    with pytest.raises(PermissionDenied, match="may not user.manage"):
        from canteen_watch.auth import add_user

        add_user(env.sessions, env.sink, env.user("auditor"), "someone", PASSWORD, Role.AUDITOR)
    assert [u.username for u in list_users(env.sessions, env.user("auditor"))] == sorted(["li.na", *MATRIX_USERS])
    with pytest.raises(PermissionDenied):
        list_users(env.sessions, env.user("inspector"))

    inspector = env.user("inspector")
    case = env.open_case("pest", "cam-a")
    disable_user(env.sessions, env.sink, env.user("admin"), "inspector")
    with pytest.raises(PermissionDenied, match="disabled"):
        review_violation(env.sessions, env.sink, inspector, case.id, outcome="confirmed")  # the stale User object is refused
    with pytest.raises(InputError, match="own account"):
        disable_user(env.sessions, env.sink, env.user("admin"), "admin")
    set_user_active(env.sessions, env.sink, env.system, "inspector", True)
    assert review_violation(env.sessions, env.sink, inspector, case.id, outcome="confirmed").state == "rectification_due"
    with write_transaction(env.sessions) as session:  # jurisdiction narrowed: takes effect at once
        from canteen_watch.workflows.models import UserScopeRow

        session.execute(update(UserScopeRow).where(UserScopeRow.user_id == inspector.id).values(ref="North"))
        assert refresh_actor(session, inspector).districts == {"North"}
    with pytest.raises(PermissionDenied):
        violation_detail(env.sessions, inspector, case.id)


def test_login_rate_limit_holds_across_processes(wf: WorkflowEnv, tmp_path: Path) -> None:
    policy = LoginPolicy(max_failures=3, window_minutes=10, lockout_minutes=15)
    user = wf.add_user("zhao", Role.INSPECTOR, ["district:Central"])
    with wf.sessions() as session:
        assert authenticate(session, " ZHAO ", PASSWORD, T0, policy=policy).id == user.id
    for name, password in (("zhao", "wrong password"), ("nobody", PASSWORD), ("", ""), ("zhao", "x" * 5000)):
        with wf.sessions() as session, pytest.raises(InvalidCredentials, match="^invalid username or password$"):
            authenticate(session, name, password, T0, policy=policy)
    # a second process records the next failure in the same database: the account locks
    script = textwrap.dedent(
        f"""
        import sys
        from datetime import datetime
        from canteen_watch.auth import authenticate, InvalidCredentials
        from canteen_watch.db.base import make_engine, make_session_factory
        from canteen_watch.workflows.tiers import LoginPolicy
        sessions = make_session_factory(make_engine({wf.url!r}))
        try:
            with sessions() as session:
                authenticate(session, "zhao", "still wrong", datetime.fromisoformat({(T0 + timedelta(minutes=1)).isoformat()!r}), policy=LoginPolicy(max_failures=3, window_minutes=10, lockout_minutes=15))
        except InvalidCredentials as exc:
            print(exc)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[1], env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert "the account is locked until 2026-03-02 08:16:00" in result.stdout, result.stderr[-2000:]
    with wf.sessions() as session, pytest.raises(AccountLocked, match="try again after 2026-03-02 08:16:00"):
        authenticate(session, "zhao", PASSWORD, T0 + timedelta(minutes=5), policy=policy)
    assert authenticate(wf.sessions, "zhao", PASSWORD, T0 + timedelta(minutes=16), policy=policy).id == user.id  # the factory form
    # failures further apart than the window do not add up
    for minute in (20, 31, 42):
        with pytest.raises(InvalidCredentials, match="password$"):
            authenticate(wf.sessions, "zhao", "nope", T0 + timedelta(minutes=minute), policy=policy)
    with wf.sessions() as session:
        authenticate(session, "zhao", PASSWORD, T0 + timedelta(minutes=43), policy=policy)
    disable_user(wf.sessions, wf.sink, wf.system, "zhao")
    with wf.sessions() as session, pytest.raises(AccountDisabled):
        authenticate(session, "zhao", PASSWORD, T0 + timedelta(minutes=44), policy=policy)
    with wf.sessions() as session, pytest.raises(InvalidCredentials):
        authenticate(session, "zhao", "wrong", T0 + timedelta(minutes=44), policy=policy)


def test_password_change(wf_sqlite: WorkflowEnv) -> None:
    env = wf_sqlite
    manager = env.user("manager")
    change_password(env.sessions, env.sink, manager, manager.id, "a brand new passphrase", now=T0)
    with env.sessions() as session:
        assert authenticate(session, "manager", "a brand new passphrase", T0).id == manager.id
    with pytest.raises(PermissionDenied):
        change_password(env.sessions, env.sink, manager, env.user("inspector").id, "another passphrase!")
    with pytest.raises(InputError, match="at least 10"):
        change_password(env.sessions, env.sink, manager, manager.id, "short")
    change_password(env.sessions, env.sink, env.user("admin"), "inspector", "reset by the admin", now=T0)
    with env.sessions() as session:
        assert authenticate(session, "inspector", "reset by the admin", T0).role is Role.INSPECTOR
    with pytest.raises(InvalidCredentials, match="locked until"):
        authenticate(env.sessions, "registrar", "guess", T0, policy=LoginPolicy(max_failures=1), sink=env.sink)
    assert env.ledger_actions(f"user:{env.user('registrar').id}") == ["user.locked"]
    change_password(env.sessions, env.sink, env.system, "registrar", "unlocked by a reset", now=T0)  # a reset clears the lock
    assert authenticate(env.sessions, "registrar", "unlocked by a reset", T0).id == env.user("registrar").id


def test_user_cli_add_list_disable(tmp_path: Path) -> None:
    config = tmp_path / "canteen-watch.toml"
    config.write_text(
        f'data_dir = "{tmp_path / "data"}"\n[database]\nurl = "sqlite:///{tmp_path / "cli.db"}"\n'
        '[[sites]]\nid = "s-a"\nname = "No. 1 Primary School"\ndistrict = "Central"\n',
        encoding="utf-8",
    )
    runner = CliRunner()
    result = runner.invoke(user_app, ["add", "wang.fang", "--role", "inspector", "--district", "Central", "--district", "North", "--password-stdin", "-c", str(config)], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "created user wang.fang" in result.output and "district:Central" in result.output
    result = runner.invoke(user_app, ["add", "auditor1", "--role", "auditor", "-c", str(config)], input="a good password\na good password\n")
    assert result.exit_code == 0, result.output
    result = runner.invoke(user_app, ["add", "bad", "--role", "king", "--password-stdin", "-c", str(config)], input=PASSWORD + "\n")
    assert result.exit_code == 1 and "unknown role" in result.output
    result = runner.invoke(user_app, ["add", "wang.fang", "--role", "auditor", "--password-stdin", "-c", str(config)], input=PASSWORD + "\n")
    assert result.exit_code == 1 and "taken" in result.output
    result = runner.invoke(user_app, ["add", "chen", "--role", "canteen_manager", "--site", "s-a", "--password-stdin", "-c", str(config)], input=PASSWORD + "\n")
    assert result.exit_code == 0 and "site:s-a" in result.output, result.output
    assert runner.invoke(user_app, ["disable", "wang.fang", "-c", str(config)]).exit_code == 0
    result = runner.invoke(user_app, ["list", "-c", str(config)])
    assert result.exit_code == 0 and "wang.fang" in result.output and "disabled" in result.output and "auditor1" in result.output
    result = runner.invoke(user_app, ["disable", "ghost", "-c", str(config)])
    assert result.exit_code == 1 and "no user 'ghost'" in result.output
    assert PASSWORD not in result.output


def test_matrix_tables_are_complete() -> None:
    assert set(EXPECTED) == set(MATRIX_USERS) and set(SERVICE) == set(SITE_ACTIONS)
    assert len(SITE_CELLS) == 5 * len(SITE_ACTIONS) * 3 and len(GLOBAL_CELLS) == 15
    assert not set(itertools.chain.from_iterable(EXPECTED[r] for r in EXPECTED)) - set(Action)
