"""``canteen-watch user add|list|disable``: manage users from the command line.

The lead mounts :data:`user_app` with ``app.add_typer(user_app, name="user")``. Commands act as
the system administrator ``system:cli`` (whoever can run them can read the configuration and the
database anyway); every change is ledgered. Passwords are read from a hidden prompt or, for
scripts, from standard input with ``--password-stdin``; they never appear on the command line.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

user_app = typer.Typer(help="Users, roles and jurisdictions.", no_args_is_help=True)
console = Console()

ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML configuration file (default: $CANTEEN_WATCH_CONFIG or ./canteen-watch.toml).")]


def _open(config: Path | None):  # type: ignore[no-untyped-def]
    from canteen_watch.cli import settings_or_exit
    from canteen_watch.runtime import open_database, open_sink, sync_config

    settings = settings_or_exit(config)
    engine, sessions = open_database(settings)
    sync_config(sessions, settings)  # configured sites exist before a manager is given one
    return settings, engine, sessions, open_sink(settings, sessions)


def _login_policy(settings):  # type: ignore[no-untyped-def]
    from canteen_watch.workflows.tiers import LoginPolicy

    workflows = getattr(settings, "workflows", None)
    return workflows.login if workflows is not None else LoginPolicy()


def _fail(message: str, code: int = 1) -> None:
    console.print(f"[red]error[/red]: {message}", highlight=False, markup=True)
    raise typer.Exit(code)


@user_app.command("add")
def add(
    username: Annotated[str, typer.Argument(help="Login name: 3-64 of a-z 0-9 . _ -")],
    role: Annotated[str, typer.Option("--role", "-r", help="inspector, canteen_manager, auditor, registrar or admin.")],
    site: Annotated[Optional[list[str]], typer.Option("--site", help="A site the user manages (managers; repeatable).")] = None,
    district: Annotated[Optional[list[str]], typer.Option("--district", help="A district the user acts in (inspectors, registrars; repeatable).")] = None,
    city: Annotated[bool, typer.Option("--city", help="The whole city (auditors, admins; also inspectors or registrars).")] = False,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from the first line of standard input.")] = False,
    config: ConfigOption = None,
) -> None:
    """Create a user with a role and a jurisdiction."""
    from canteen_watch.auth import add_user, system_actor
    from canteen_watch.workflows.errors import WorkflowError

    scopes = [f"site:{s}" for s in site or []] + [f"district:{d}" for d in district or []] + (["city"] if city else [])
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    settings, engine, sessions, sink = _open(config)
    try:
        user = add_user(sessions, sink, system_actor("cli"), username, password, role, scopes, policy=_login_policy(settings))
    except WorkflowError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    console.print(f"created user [bold]{user.username}[/bold] (id {user.id}, {user.role.value}, {', '.join(str(s) for s in user.scopes)})", highlight=False)


@user_app.command("list")
def list_(
    include_disabled: Annotated[bool, typer.Option("--all/--active", help="Include disabled users.")] = True,
    config: ConfigOption = None,
) -> None:
    """List users with their role, jurisdiction and state."""
    from canteen_watch.auth import list_users, system_actor
    from canteen_watch.core import utcnow

    _settings, engine, sessions, _sink = _open(config)
    try:
        users = list_users(sessions, system_actor("cli"), include_disabled=include_disabled)
    finally:
        engine.dispose()
    now = utcnow()
    table = Table("id", "username", "role", "jurisdiction", "state")
    for user in users:
        state = "disabled" if not user.active else (f"locked until {user.locked_until:%Y-%m-%d %H:%M} UTC" if user.locked_until and user.locked_until > now else "active")
        table.add_row(str(user.id), user.username, user.role.value, ", ".join(str(s) for s in user.scopes), state)
    console.print(table)


@user_app.command("disable")
def disable(
    username: Annotated[str, typer.Argument(help="The user to disable.")],
    config: ConfigOption = None,
) -> None:
    """Disable a user: logins are refused and their sessions can no longer act."""
    from canteen_watch.auth import disable_user, system_actor
    from canteen_watch.workflows.errors import WorkflowError

    _settings, engine, sessions, sink = _open(config)
    try:
        user = disable_user(sessions, sink, system_actor("cli"), username)
    except WorkflowError as exc:
        _fail(str(exc))
    finally:
        engine.dispose()
    console.print(f"disabled user [bold]{user.username}[/bold] (id {user.id})", highlight=False)
