"""Users, roles, the jurisdiction tree and permissions.

Roles and what they may do (``scope`` = only inside the user's jurisdiction, ``all`` = everywhere):

============== ================================================================================
role           actions
============== ================================================================================
admin          everything, everywhere
auditor        read violations, institutions and users, verify evidence, export reports — all;
               changes nothing
registrar      manage institutions (register, edit, status, import), read violations and
               institutions, export — scope; cannot review violations
inspector      read, review, re-check rectifications, evidence holds and verification, record
               inspections, read institutions, export — scope (their districts)
canteen_manager read, review, submit rectifications, read institutions, export — scope (their
               own sites only)
============== ================================================================================

The jurisdiction tree is city → district → site: a user's scopes are nodes of it (``city:*``,
``district:<name>``, ``site:<id>``) and a scope covers every site below it. Managers hold site
scopes only; inspectors and registrars district (or city) scopes; auditors and admins the city.

Every service function takes the acting :class:`User` and calls :func:`authorize` (after
:func:`refresh_actor` re-reads the user inside the transaction, so a disabled account or a
narrowed jurisdiction takes effect at once). Passwords are hashed with Argon2id (argon2-cffi);
failed logins are counted in the database, so the lock holds across processes.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import ColumnElement, false, or_, select, true
from sqlalchemy.orm import Session, sessionmaker

from canteen_watch.core import as_utc, utcnow
from canteen_watch.db.base import write_transaction
from canteen_watch.db.models import SiteRow
from canteen_watch.events import EventSink
from canteen_watch.workflows.errors import ConflictError, InputError, NotFoundError, PermissionDenied, WorkflowError
from canteen_watch.workflows.models import ROW_LOCK, UserRow, UserScopeRow
from canteen_watch.workflows.tiers import LoginPolicy
from canteen_watch.workflows.validation import clean_text

log = logging.getLogger(__name__)

CITY = "*"
USERNAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{2,63}")
MAX_PASSWORD_LENGTH = 1024


class Role(str, enum.Enum):
    """What a user is."""

    INSPECTOR = "inspector"
    MANAGER = "canteen_manager"
    AUDITOR = "auditor"
    REGISTRAR = "registrar"
    ADMIN = "admin"


class Action(str, enum.Enum):
    """What a user may be allowed to do."""

    VIOLATION_READ = "violation.read"
    VIOLATION_REVIEW = "violation.review"
    RECTIFICATION_SUBMIT = "rectification.submit"
    RECTIFICATION_RECHECK = "rectification.recheck"
    EVIDENCE_HOLD = "evidence.hold"
    EVIDENCE_VERIFY = "evidence.verify"
    INSTITUTION_READ = "institution.read"
    INSTITUTION_WRITE = "institution.write"
    INSPECTION_RECORD = "inspection.record"
    REPORT_EXPORT = "report.export"
    USER_READ = "user.read"
    USER_MANAGE = "user.manage"
    ENDPOINT_MANAGE = "endpoint.manage"


class ScopeLevel(str, enum.Enum):
    """A level of the jurisdiction tree."""

    CITY = "city"
    DISTRICT = "district"
    SITE = "site"


ALL = "all"
SCOPE = "scope"

#: role -> action -> reach ("all": everywhere; "scope": inside the user's jurisdiction).
POLICY: dict[Role, dict[Action, str]] = {
    Role.ADMIN: {action: ALL for action in Action},
    Role.AUDITOR: {
        Action.VIOLATION_READ: ALL,
        Action.EVIDENCE_VERIFY: ALL,
        Action.INSTITUTION_READ: ALL,
        Action.REPORT_EXPORT: ALL,
        Action.USER_READ: ALL,
    },
    Role.REGISTRAR: {
        Action.INSTITUTION_READ: SCOPE,
        Action.INSTITUTION_WRITE: SCOPE,
        Action.VIOLATION_READ: SCOPE,
        Action.REPORT_EXPORT: SCOPE,
    },
    Role.INSPECTOR: {
        Action.VIOLATION_READ: SCOPE,
        Action.VIOLATION_REVIEW: SCOPE,
        Action.RECTIFICATION_RECHECK: SCOPE,
        Action.EVIDENCE_HOLD: SCOPE,
        Action.EVIDENCE_VERIFY: SCOPE,
        Action.INSTITUTION_READ: SCOPE,
        Action.INSPECTION_RECORD: SCOPE,
        Action.REPORT_EXPORT: SCOPE,
    },
    Role.MANAGER: {
        Action.VIOLATION_READ: SCOPE,
        Action.VIOLATION_REVIEW: SCOPE,
        Action.RECTIFICATION_SUBMIT: SCOPE,
        Action.INSTITUTION_READ: SCOPE,
        Action.REPORT_EXPORT: SCOPE,
    },
}

#: Scope levels each role may hold.
ALLOWED_SCOPE_LEVELS: dict[Role, frozenset[ScopeLevel]] = {
    Role.ADMIN: frozenset({ScopeLevel.CITY}),
    Role.AUDITOR: frozenset({ScopeLevel.CITY}),
    Role.REGISTRAR: frozenset({ScopeLevel.CITY, ScopeLevel.DISTRICT}),
    Role.INSPECTOR: frozenset({ScopeLevel.CITY, ScopeLevel.DISTRICT}),
    Role.MANAGER: frozenset({ScopeLevel.SITE}),
}


# ------------------------------------------------------------------------------------- errors


class AuthenticationError(WorkflowError):
    """A login failed."""


class InvalidCredentials(AuthenticationError):
    """Unknown user name or wrong password (deliberately not told apart)."""

    def __init__(self, locked_until: datetime | None = None) -> None:
        message = "invalid username or password"
        if locked_until is not None:
            message += f"; too many failures, the account is locked until {locked_until:%Y-%m-%d %H:%M:%S} UTC"
        super().__init__(message)
        self.locked_until = locked_until


class AccountLocked(AuthenticationError):
    """Too many failed logins: the account refuses logins until ``locked_until``."""

    def __init__(self, locked_until: datetime) -> None:
        super().__init__(f"account locked after too many failed logins; try again after {locked_until:%Y-%m-%d %H:%M:%S} UTC")
        self.locked_until = locked_until


class AccountDisabled(AuthenticationError):
    """The account was disabled by an administrator."""

    def __init__(self) -> None:
        super().__init__("account is disabled; ask an administrator")


# ------------------------------------------------------------------------------------- types


@dataclass(frozen=True)
class Scope:
    """A node of the jurisdiction tree: ``Scope("district", "Central")``."""

    level: ScopeLevel
    ref: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "level", ScopeLevel(self.level))

    def __str__(self) -> str:
        return f"{self.level.value}:{self.ref}"

    @classmethod
    def parse(cls, text: str) -> "Scope":
        """Parse ``city``, ``city:*``, ``district:<name>`` or ``site:<id>``."""
        level, _, ref = text.partition(":")
        try:
            scope_level = ScopeLevel(level.strip())
        except ValueError:
            raise InputError(f"unknown scope level {level!r}; use city, district:<name> or site:<id>", field="scope") from None
        if scope_level is ScopeLevel.CITY:
            return cls(scope_level, CITY)
        return cls(scope_level, clean_text(ref, "scope", max_length=100) or "")


@dataclass(frozen=True)
class SiteRef:
    """Where an action happens: a site (with its district), or a district for a site not yet created."""

    district: str
    site_id: str | None = None


@dataclass(frozen=True)
class User:
    """The acting user, as service functions see it (no password hash).

    Attributes:
        id: Database id; None for a system actor (the CLI, scheduled jobs).
        username: Login name (never written to the ledger; ids are).
        role: The user's role.
        scopes: Jurisdiction nodes the user acts in.
        active: False once disabled.
        system: True for :func:`system_actor` users.
    """

    id: int | None
    username: str
    role: Role
    scopes: tuple[Scope, ...] = ()
    active: bool = True
    system: bool = False
    locked_until: datetime | None = field(default=None, compare=False)

    @property
    def tag(self) -> str:
        """Ledger actor: ``user:<id>`` or ``system:<name>`` (no personal data)."""
        return f"system:{self.username}" if self.system else f"user:{self.id}"

    @property
    def site_ids(self) -> frozenset[str]:
        """Sites named directly in the user's scopes."""
        return frozenset(s.ref for s in self.scopes if s.level is ScopeLevel.SITE)

    @property
    def districts(self) -> frozenset[str]:
        """Districts named in the user's scopes."""
        return frozenset(s.ref for s in self.scopes if s.level is ScopeLevel.DISTRICT)

    @property
    def citywide(self) -> bool:
        """True when a scope covers the whole city."""
        return any(s.level is ScopeLevel.CITY for s in self.scopes)


def system_actor(name: str = "cli") -> User:
    """An administrator that is not a person: the CLI or a scheduled job (ledgered as ``system:<name>``)."""
    return User(id=None, username=name, role=Role.ADMIN, scopes=(Scope(ScopeLevel.CITY, CITY),), active=True, system=True)


# ------------------------------------------------------------------------------------- policy


def covers(user: User, site: SiteRef) -> bool:
    """True when one of the user's scopes covers ``site``."""
    for scope in user.scopes:
        if scope.level is ScopeLevel.CITY:
            return True
        if scope.level is ScopeLevel.DISTRICT and scope.ref == site.district:
            return True
        if scope.level is ScopeLevel.SITE and site.site_id is not None and scope.ref == site.site_id:
            return True
    return False


def can(user: User, action: Action, site: SiteRef | None = None) -> bool:
    """Whether ``user`` may do ``action`` at ``site``.

    With ``site=None`` the question is "anywhere?": true when the role has the action and the
    user holds any scope (list functions then filter rows with :func:`scope_filter`).
    """
    if not user.active:
        return False
    reach = POLICY.get(user.role, {}).get(action)
    if reach is None:
        return False
    if reach == ALL:
        return True
    if site is None:
        return bool(user.scopes)
    return covers(user, site)


def authorize(user: User, action: Action, site: SiteRef | None = None) -> None:
    """Raise :class:`PermissionDenied` unless :func:`can` says yes; the message says why."""
    if can(user, action, site):
        return
    role = user.role.value
    if not user.active:
        raise PermissionDenied("account is disabled", role=role, action=action.value)
    if action not in POLICY.get(user.role, {}):
        raise PermissionDenied(f"role {role} may not {action.value}", role=role, action=action.value)
    where = f"site {site.site_id}" if site and site.site_id else f"district {site.district}" if site else "any jurisdiction"
    raise PermissionDenied(f"{where} is outside the jurisdiction of this {role} user", role=role, action=action.value)


def scope_filter(user: User, action: Action, site_column: Any, district_column: Any) -> ColumnElement[bool]:
    """SQL condition selecting the rows ``user`` may ``action`` (by their site and district columns)."""
    if not user.active:
        return false()
    reach = POLICY.get(user.role, {}).get(action)
    if reach is None:
        return false()
    if reach == ALL or user.citywide:
        return true()
    conditions = []
    if user.site_ids:
        conditions.append(site_column.in_(sorted(user.site_ids)))
    if user.districts:
        conditions.append(district_column.in_(sorted(user.districts)))
    return or_(*conditions) if conditions else false()


def site_ref(session: Session, site_id: str) -> SiteRef:
    """The :class:`SiteRef` of an existing site (NotFoundError when unknown)."""
    district = session.scalar(select(SiteRow.district).where(SiteRow.id == site_id))
    if district is None:
        raise NotFoundError(f"no site {site_id!r}")
    return SiteRef(district=district, site_id=site_id)


# ------------------------------------------------------------------------------------- passwords

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("canteen-watch: constant-time dummy password")


def hash_password(password: str) -> str:
    """Argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash`` (False for a malformed hash)."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_new_password(password: object, policy: LoginPolicy) -> str:
    """Refuse passwords that are not text, too short, too long or contain control characters."""
    if not isinstance(password, str):
        raise InputError("must be text", field="password")
    if len(password) < policy.min_password_length:
        raise InputError(f"must be at least {policy.min_password_length} characters long", field="password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InputError(f"must be at most {MAX_PASSWORD_LENGTH} characters long", field="password")
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in password):
        raise InputError("contains a control character", field="password")
    return password


def check_username(username: object) -> str:
    """Normalise and check a user name: 3-64 of ``a-z 0-9 . _ -``, starting with a letter or digit."""
    if not isinstance(username, str):
        raise InputError("must be text", field="username")
    name = username.strip().lower()
    if not USERNAME_PATTERN.fullmatch(name):
        raise InputError("must be 3 to 64 characters of a-z, 0-9, '.', '_' or '-', starting with a letter or digit", field="username")
    return name


# ------------------------------------------------------------------------------------- rows <-> users


def _scopes_of(session: Session, user_id: int) -> tuple[Scope, ...]:
    rows = session.execute(select(UserScopeRow.level, UserScopeRow.ref).where(UserScopeRow.user_id == user_id).order_by(UserScopeRow.level, UserScopeRow.ref)).all()
    return tuple(Scope(ScopeLevel(level), ref) for level, ref in rows)


def _to_user(session: Session, row: UserRow) -> User:
    return User(
        id=row.id,
        username=row.username,
        role=Role(row.role),
        scopes=_scopes_of(session, row.id),
        active=row.active,
        locked_until=as_utc(row.locked_until) if row.locked_until else None,
    )


def refresh_actor(session: Session, actor: User) -> User:
    """Re-read ``actor`` inside the caller's transaction (role, scopes, active).

    System actors are returned unchanged.

    Raises:
        PermissionDenied: The user no longer exists or is disabled.
    """
    if actor.system:
        return actor
    if actor.id is None:
        raise PermissionDenied("unknown acting user")
    row = session.get(UserRow, actor.id)
    if row is None:
        raise PermissionDenied(f"user {actor.id} no longer exists")
    if not row.active:
        raise PermissionDenied("account is disabled", role=row.role)
    return _to_user(session, row)


def _check_scopes(session: Session, role: Role, scopes: Iterable[Scope | str]) -> tuple[Scope, ...]:
    parsed = tuple(sorted({s if isinstance(s, Scope) else Scope.parse(s) for s in scopes}, key=str))
    if not parsed and role in (Role.ADMIN, Role.AUDITOR):
        parsed = (Scope(ScopeLevel.CITY, CITY),)
    if not parsed:
        need = "site:<id>" if role is Role.MANAGER else "district:<name> or city"
        raise InputError(f"a {role.value} needs at least one scope ({need})", field="scope")
    allowed = ALLOWED_SCOPE_LEVELS[role]
    for scope in parsed:
        if scope.level not in allowed:
            levels = ", ".join(sorted(level.value for level in allowed))
            raise InputError(f"a {role.value} may hold {levels} scopes, not {scope}", field="scope")
        if scope.level is ScopeLevel.SITE and session.get(SiteRow, scope.ref) is None:
            raise InputError(f"no site {scope.ref!r}", field="scope")
    return parsed


# ------------------------------------------------------------------------------------- user management


def add_user(
    sessions: sessionmaker[Session],
    sink: EventSink,
    actor: User,
    username: str,
    password: str,
    role: Role | str,
    scopes: Sequence[Scope | str] = (),
    *,
    now: datetime | None = None,
    policy: LoginPolicy | None = None,
) -> User:
    """Create a user (admin only).

    Args:
        sessions: Session factory.
        sink: Ledger sink (``user.changed`` is appended; no name, only id and role).
        actor: Who does it (an admin, or :func:`system_actor` for the CLI).
        username: Login name (normalised to lower case).
        password: Initial password (checked against ``policy``).
        role: One of :class:`Role`.
        scopes: Jurisdiction (``site:<id>`` for managers, ``district:<name>`` for inspectors…).
        now: Clock.
        policy: Password rules.

    Raises:
        PermissionDenied: The actor is not an admin.
        InputError: Bad user name, password, role or scopes.
        ConflictError: The user name is taken.
    """
    now = as_utc(now or utcnow())
    policy = policy or LoginPolicy()
    name = check_username(username)
    try:
        role = Role(role)
    except ValueError:
        raise InputError(f"unknown role {role!r}; use one of {', '.join(r.value for r in Role)}", field="role") from None
    check_new_password(password, policy)
    password_hash = hash_password(password)
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.USER_MANAGE)
        checked = _check_scopes(session, role, scopes)
        if session.scalar(select(UserRow.id).where(UserRow.username == name)) is not None:
            raise ConflictError(f"user name {name!r} is taken")
        row = UserRow(username=name, password_hash=password_hash, role=role.value, active=True, created_at=now, password_changed_at=now, failed_logins=0)
        session.add(row)
        session.flush()
        for scope in checked:
            session.add(UserScopeRow(user_id=row.id, level=scope.level.value, ref=scope.ref))
        session.flush()
        sink.append(
            session,
            actor=acting.tag,
            action="user.changed",
            subject=f"user:{row.id}",
            payload={"change": "created", "role": role.value, "scopes": [str(s) for s in checked], "at": now.isoformat()},
        )
        return _to_user(session, row)


def _user_row(session: Session, username_or_id: str | int) -> UserRow:
    if isinstance(username_or_id, int):
        row = session.get(UserRow, username_or_id, with_for_update=ROW_LOCK)
    else:
        row = session.scalars(select(UserRow).where(UserRow.username == username_or_id.strip().lower()).with_for_update(key_share=True)).first()
    if row is None:
        raise NotFoundError(f"no user {username_or_id!r}")
    return row


def set_user_active(sessions: sessionmaker[Session], sink: EventSink, actor: User, user: str | int, active: bool, *, now: datetime | None = None) -> User:
    """Disable (``active=False``) or re-enable a user (admin only); ledgered as ``user.changed``."""
    now = as_utc(now or utcnow())
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.USER_MANAGE)
        row = _user_row(session, user)
        if acting.id is not None and row.id == acting.id and not active:
            raise InputError("you cannot disable your own account", field="user")
        if row.active != active:
            row.active = active
            row.disabled_at = None if active else now
            if active:
                row.failed_logins, row.failure_window_start, row.locked_until = 0, None, None
            sink.append(session, actor=acting.tag, action="user.changed", subject=f"user:{row.id}", payload={"change": "enabled" if active else "disabled", "role": row.role, "at": now.isoformat()})
        return _to_user(session, row)


def disable_user(sessions: sessionmaker[Session], sink: EventSink, actor: User, user: str | int, *, now: datetime | None = None) -> User:
    """Disable a user: their logins and any action by a stale ``User`` object are refused."""
    return set_user_active(sessions, sink, actor, user, False, now=now)


def change_password(
    sessions: sessionmaker[Session], sink: EventSink, actor: User, user: str | int, new_password: str, *, now: datetime | None = None, policy: LoginPolicy | None = None
) -> None:
    """Set a new password: users for themselves, admins for anyone; clears a lock."""
    now = as_utc(now or utcnow())
    check_new_password(new_password, policy or LoginPolicy())
    password_hash = hash_password(new_password)
    with write_transaction(sessions) as session:
        acting = refresh_actor(session, actor)
        row = _user_row(session, user)
        if acting.id != row.id:
            authorize(acting, Action.USER_MANAGE)
        row.password_hash, row.password_changed_at = password_hash, now
        row.failed_logins, row.failure_window_start, row.locked_until = 0, None, None
        sink.append(session, actor=acting.tag, action="user.changed", subject=f"user:{row.id}", payload={"change": "password", "at": now.isoformat()})


def list_users(sessions: sessionmaker[Session], actor: User, *, include_disabled: bool = True) -> list[User]:
    """All users with their scopes (admins and auditors)."""
    with sessions() as session:
        acting = refresh_actor(session, actor)
        authorize(acting, Action.USER_READ)
        query = select(UserRow).order_by(UserRow.username)
        if not include_disabled:
            query = query.where(UserRow.active.is_(True))
        return [_to_user(session, row) for row in session.scalars(query).all()]


def get_user(session: Session, user_id: int) -> User:
    """The user with this id (NotFoundError when absent)."""
    row = session.get(UserRow, user_id)
    if row is None:
        raise NotFoundError(f"no user {user_id}")
    return _to_user(session, row)


# ------------------------------------------------------------------------------------- login


def authenticate(
    session: Session | sessionmaker[Session],
    username: str,
    password: str,
    now: datetime | None = None,
    *,
    policy: LoginPolicy | None = None,
    sink: EventSink | None = None,
) -> User:
    """Check a user name and password and return the user.

    Failed attempts are counted per user in the database: ``policy.max_failures`` failures within
    ``policy.window_minutes`` lock the account for ``policy.lockout_minutes``; while locked, even
    the right password is refused. A success resets the count. The slow Argon2 check runs
    outside any write lock; the count is then updated in a short transaction that re-checks the
    lock, so parallel guesses cannot slip past it.

    Pass the session factory (preferred: on SQLite the update then runs under ``BEGIN
    IMMEDIATE``) or a session of its own, which this function **commits** (a failed attempt must be
    recorded even though it raises).

    Args:
        session: Session factory, or a fresh session.
        username: Login name (case-insensitive).
        password: The password.
        now: Clock (tests pass a controllable one).
        policy: Rate-limit policy (``settings.workflows.login``).
        sink: When given, a lock-out is ledgered (``user.locked``, user id only).

    Raises:
        InvalidCredentials: Unknown user or wrong password (indistinguishable; the message says
            when this failure locked the account).
        AccountLocked: The account is locked.
        AccountDisabled: The password was right but the account is disabled.
    """
    now = as_utc(now or utcnow())
    policy = policy or LoginPolicy()
    name = username.strip().lower() if isinstance(username, str) else ""
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        password = ""
    # 1. read (no lock): is there such a user, is it locked, and its hash
    reader = session if isinstance(session, Session) else session()
    try:
        found = reader.execute(select(UserRow.id, UserRow.password_hash, UserRow.locked_until).where(UserRow.username == name)).first() if USERNAME_PATTERN.fullmatch(name) else None
        reader.rollback()
    finally:
        if reader is not session:
            reader.close()
    if found is None:
        verify_password(_DUMMY_HASH, password)  # same cost as a real check: no user enumeration by timing
        raise InvalidCredentials()
    locked_until = as_utc(found.locked_until) if found.locked_until else None
    if locked_until is not None and now < locked_until:
        raise AccountLocked(locked_until)
    # 2. the slow check, outside any transaction
    correct = verify_password(found.password_hash, password)
    # 3. record the outcome in a short write transaction
    if isinstance(session, Session):
        user, error = _record_attempt(session, found.id, correct, password, now, policy, sink)
        session.commit()
    else:
        with write_transaction(session) as writer:
            user, error = _record_attempt(writer, found.id, correct, password, now, policy, sink)
    if error is not None:
        raise error
    assert user is not None
    return user


def _record_attempt(
    session: Session, user_id: int, correct: bool, password: str, now: datetime, policy: LoginPolicy, sink: EventSink | None
) -> tuple[User | None, AuthenticationError | None]:
    row = session.get(UserRow, user_id, with_for_update=ROW_LOCK)
    if row is None:
        return None, InvalidCredentials()
    locked_until = as_utc(row.locked_until) if row.locked_until else None
    if locked_until is not None and now < locked_until:
        return None, AccountLocked(locked_until)  # locked by a parallel attempt meanwhile
    if not correct:
        window_start = as_utc(row.failure_window_start) if row.failure_window_start else None
        if window_start is None or now - window_start > timedelta(minutes=policy.window_minutes) or locked_until is not None:
            row.failed_logins, row.failure_window_start, row.locked_until = 1, now, None
        else:
            row.failed_logins += 1
        new_lock = None
        if row.failed_logins >= policy.max_failures:
            new_lock = now + timedelta(minutes=policy.lockout_minutes)
            row.locked_until, row.failed_logins, row.failure_window_start = new_lock, 0, None
            log.warning("user %s locked until %s after %d failed logins", row.id, new_lock.isoformat(), policy.max_failures)
            if sink is not None:
                sink.append(session, actor="system:auth", action="user.locked", subject=f"user:{row.id}", payload={"until": new_lock.isoformat(), "failures": policy.max_failures})
        return None, InvalidCredentials(new_lock)
    if not row.active:
        return None, AccountDisabled()
    row.failed_logins, row.failure_window_start, row.locked_until, row.last_login_at = 0, None, None, now
    if _hasher.check_needs_rehash(row.password_hash):
        row.password_hash = hash_password(password)
    return _to_user(session, row), None


__all__ = [
    "Action",
    "AccountDisabled",
    "AccountLocked",
    "AuthenticationError",
    "InvalidCredentials",
    "POLICY",
    "PermissionDenied",
    "Role",
    "Scope",
    "ScopeLevel",
    "SiteRef",
    "User",
    "add_user",
    "authenticate",
    "authorize",
    "can",
    "change_password",
    "covers",
    "disable_user",
    "get_user",
    "hash_password",
    "list_users",
    "refresh_actor",
    "scope_filter",
    "set_user_active",
    "site_ref",
    "system_actor",
    "verify_password",
]
