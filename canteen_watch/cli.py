"""The ``canteen-watch`` command line."""

from __future__ import annotations

import logging
import os
import signal
import threading
from contextlib import ExitStack
from importlib import resources
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from canteen_watch.config import ConfigError, Settings, load_settings

app = typer.Typer(help="canteen-watch: smart-canteen food-safety monitoring.", no_args_is_help=True, pretty_exceptions_enable=False)
storage_app = typer.Typer(help="The embedded S3 server.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(storage_app, name="storage")
app.add_typer(db_app, name="db")

console = Console()
_ROOT_SETTINGS: list[Settings] = []  # settings loaded by the root --config, for mounted command groups
ConfigOption = Annotated[Optional[Path], typer.Option("--config", "-c", help="TOML configuration file (default: $CANTEEN_WATCH_CONFIG or ./canteen-watch.toml).")]


@app.callback()
def main(ctx: typer.Context, config: Annotated[Optional[Path], typer.Option("--config", "-c", help="Configuration for command groups without their own --config (ledger …).")] = None) -> None:
    """Load the configuration for command groups that take it from here (ledger, training)."""
    if config is None and not os.environ.get("CANTEEN_WATCH_CONFIG") and not Path("canteen-watch.toml").exists():
        return
    if ctx.invoked_subcommand == "ledger":
        from canteen_watch.ledger.cli import LedgerCliConfig

        settings = settings_or_exit(config)
        ctx.obj = LedgerCliConfig.from_settings(settings, image_reader=_lazy_evidence_reader(settings))
    elif ctx.invoked_subcommand in ("train", "train-roi"):
        from canteen_watch.model_events import ledger_promotions

        settings = settings_or_exit(config)
        _ROOT_SETTINGS.append(settings)
        ledger_promotions(settings)


def _lazy_evidence_reader(settings: Settings):  # type: ignore[no-untyped-def]
    """An S3 reader for evidence bundles that connects (or starts the embedded server) on first use."""
    store = None

    def read(bucket: str, key: str, version_id: str | None) -> bytes:
        nonlocal store
        if store is None:
            import atexit
            from contextlib import ExitStack

            from canteen_watch.runtime import open_storage

            stack = ExitStack()
            atexit.register(stack.close)
            store = open_storage(settings, stack)
        return store.read_evidence(bucket, key, version_id)

    return read


def _setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)], force=True)
    if not verbose:
        for noisy in ("apscheduler", "alembic"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def settings_or_exit(config: Path | None, **overrides: object) -> Settings:
    """Load the configuration or exit with the key paths that are wrong."""
    try:
        return load_settings(config, **overrides)
    except ConfigError as exc:
        console.print(f"[red]configuration error[/red]: {exc}", highlight=False)
        raise typer.Exit(2) from exc


@app.command()
def init(path: Annotated[Path, typer.Argument(help="Where to write the starter configuration.")] = Path("canteen-watch.toml"), force: Annotated[bool, typer.Option(help="Overwrite an existing file.")] = False) -> None:
    """Write a commented starter configuration."""
    if path.exists() and not force:
        console.print(f"[red]{path} exists[/red]; use --force to overwrite")
        raise typer.Exit(1)
    template = resources.files("canteen_watch").joinpath("starter.toml").read_text(encoding="utf-8")
    path.write_text(template, encoding="utf-8")
    console.print(f"wrote {path}; edit the sites and cameras, then run [bold]canteen-watch run -c {path}[/bold]")


@app.command()
def run(config: ConfigOption = None, no_classify: Annotated[bool, typer.Option("--no-classify", help="Store snapshots without classifying them.")] = False, verbose: bool = False) -> None:
    """Run the scheduler: one job per camera until Ctrl-C."""
    from canteen_watch.runtime import build_context
    from canteen_watch.service import SnapshotService

    _setup_logging(verbose)
    settings = settings_or_exit(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with ExitStack() as stack:
        context = build_context(settings, stack, classify=not no_classify)
        service = stack.enter_context(SnapshotService(context))
        cameras = sum(1 for job in service.scheduler.get_jobs() if not job.id.startswith("__"))
        console.print(f"scheduling {cameras} cameras; Ctrl-C stops")
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
    console.print("stopped")


@app.command("capture-once")
def capture_once(camera_id: Annotated[str, typer.Argument(help="Camera id from the configuration.")], config: ConfigOption = None, no_classify: bool = False) -> None:
    """Capture, store, classify and record one snapshot of one camera now."""
    from canteen_watch.core import utcnow
    from canteen_watch.pipeline import process_slot
    from canteen_watch.runtime import build_context

    settings = settings_or_exit(config)
    try:
        settings.camera(camera_id)
    except KeyError as exc:
        console.print(f"[red]{exc.args[0]}[/red]")
        raise typer.Exit(2) from exc
    with ExitStack() as stack:
        context = build_context(settings, stack, classify=not no_classify)
        outcome = process_slot(context, camera_id, utcnow())
    console.print(f"{outcome.slot.key}: {outcome.status} {outcome.key or ''} {outcome.sha256 or ''} {outcome.reason}", highlight=False)
    if outcome.status == "failed":
        raise typer.Exit(1)


@app.command()
def status(config: ConfigOption = None) -> None:
    """Cameras, last snapshot, health and spool depth."""
    from canteen_watch.runtime import open_database, sync_config
    from canteen_watch.status import collect_status

    settings = settings_or_exit(config)
    engine, sessions = open_database(settings)
    sync_config(sessions, settings)
    report = collect_status(sessions, settings)
    engine.dispose()
    table = Table(title="cameras")
    for column in ("camera", "site", "health", "last snapshot", "stored", "failed", "quality", "last error"):
        table.add_column(column)
    for row in report.cameras:
        table.add_row(
            row.camera_id, row.site_id, "[green]online[/green]" if row.online else "[red]offline[/red]",
            row.last_snapshot_at.strftime("%Y-%m-%d %H:%M:%S") if row.last_snapshot_at else "-",
            str(row.stored), str(row.failed), row.quality_alert or "ok", (row.last_error or "")[:60],
        )
    console.print(table)
    console.print(f"spool depth: {report.spool_files} files waiting on disk, {report.spooled_rows} snapshots not yet in S3")


@storage_app.command("serve")
def storage_serve(config: ConfigOption = None, port: Annotated[Optional[int], typer.Option(help="S3 port (default from config).")] = None) -> None:
    """Run the embedded S3 server (SeaweedFS) on 127.0.0.1 until Ctrl-C."""
    from canteen_watch.s3server import EmbeddedS3

    settings = settings_or_exit(config)
    server = EmbeddedS3.from_config(settings.storage, (settings.data_dir / "s3").resolve())
    if port:
        server.port = port
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with server:
        console.print(f"S3 on http://{server.endpoint} (access key {settings.storage.access_key!r}); Ctrl-C stops")
        try:
            while not stop.wait(1.0) and server.running:
                pass
        except KeyboardInterrupt:
            pass


@app.command()
def dashboard(
    config: ConfigOption = None,
    port: Annotated[int, typer.Option(help="Port of the dashboard on the address below.")] = 8501,
    address: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1 keeps it on this machine).")] = "127.0.0.1",
) -> None:
    """Open the Streamlit dashboard for inspectors, managers, auditors and registrars."""
    from canteen_watch.dashboard.launch import run_dashboard

    if config is not None:
        settings_or_exit(config)  # fail here, with key paths, rather than inside the app
    raise typer.Exit(run_dashboard(config.resolve() if config else None, port, address))


@app.command("export-reviews")
def export_reviews_command(
    out_dir: Annotated[Path, typer.Argument(help="Folder for <task>/<class>/ images (then: canteen-watch train --from-reviews OUT_DIR).")],
    config: ConfigOption = None,
) -> None:
    """Export reviewed cases as a training set: confirmed = violation class, false positive = compliant class."""
    from canteen_watch.workflows.labels import export_reviews

    counts = export_reviews(settings_or_exit(config), out_dir)
    if not counts:
        console.print("no reviewed cases with stored snapshots yet; review some in the dashboard first")
        raise typer.Exit(1)
    for name, count in sorted(counts.items()):
        console.print(f"{name}: {count}")
    console.print(f"next: canteen-watch train --from-reviews {out_dir}")


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None, revision: str = "head") -> None:
    """Apply the database migrations."""
    from canteen_watch.db.base import make_engine
    from canteen_watch.db.migrate import current_revision, upgrade

    settings = settings_or_exit(config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    upgrade(engine, revision)
    console.print(f"database at revision {current_revision(engine)}")
    engine.dispose()


@app.command()
def demo(
    seconds: Annotated[float, typer.Option(help="How long to run.")] = 120.0,
    images: Annotated[Optional[Path], typer.Option(help="Serve this folder of your own images through the simulated cameras.")] = None,
    video: Annotated[Optional[Path], typer.Option(help="Serve this video file through the simulated cameras.")] = None,
    data_dir: Annotated[Path, typer.Option(help="Where the demo keeps its data (reused on re-runs).")] = Path(".cw-data/demo"),
    interval: Annotated[float, typer.Option(help="Seconds between snapshots per camera.")] = 5.0,
    no_classify: bool = False,
) -> None:
    """Run everything on embedded defaults with simulated cameras, then print a summary."""
    from canteen_watch.demo import run_demo

    for path, what in ((images, "--images"), (video, "--video")):
        if path is not None and not path.exists():
            console.print(f"[red]{what} {path} does not exist[/red]")
            raise typer.Exit(2)
    _setup_logging()
    run_demo(seconds=seconds, images=images, video=video, data_dir=data_dir, interval=interval, classify=not no_classify, console=console)


def _mount_optional() -> None:
    """Mount the ledger and classifier command groups when their packages are present."""
    try:
        from canteen_watch.ledger.cli import ledger_app

        app.add_typer(ledger_app, name="ledger")
    except ImportError:
        pass
    from canteen_watch.auth_cli import user_app

    app.add_typer(user_app, name="user")

    from classifiers.cli import build_app

    from canteen_watch.roi_examples import roi_examples, roi_polygon

    def settings() -> Settings:
        return _ROOT_SETTINGS[-1] if _ROOT_SETTINGS else settings_or_exit(None)

    app.add_typer(
        build_app(snapshot_loader=lambda cam, roi: roi_examples(settings(), cam, roi), polygon_lookup=lambda cam, roi: roi_polygon(settings(), cam, roi))
    )


_mount_optional()
