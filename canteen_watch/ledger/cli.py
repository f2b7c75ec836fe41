"""``canteen-watch ledger …``: keygen, verify, prove, consistency, checkpoint, export, status.

Mount with ``app.add_typer(ledger_app, name="ledger")``. Settings come from, in order: the
command-line options below, their environment variables, then ``ctx.obj`` if the parent
command put a :class:`LedgerCliConfig` there (or a ``Settings``-like object, converted with
:meth:`LedgerCliConfig.from_settings`). An image reader for ``export`` can only come from
``ctx.obj`` (the S3 client) or ``--images-dir``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from canteen_watch.ledger.bundle import BundleError, ImageReader, export_bundle, folder_reader
from canteen_watch.ledger.checkpoint import (
    DEFAULT_ORIGIN,
    PRIVATE_KEY_FILE,
    CheckpointPublisher,
    NoteError,
    NoteVerifier,
    keygen,
    load_signer,
    load_verifier,
)

ledger_app = typer.Typer(
    name="ledger",
    help="Tamper-evident ledger: keys, verification, proofs, checkpoints and evidence bundles.",
    no_args_is_help=True,
)


@dataclass(frozen=True)
class LedgerCliConfig:
    """What the ledger commands need; the lead's root command may put one in ``ctx.obj``."""

    db_url: str | None = None
    key_dir: Path | None = None
    origin: str = DEFAULT_ORIGIN
    publish_dir: Path | None = None
    webhook_url: str | None = None
    image_reader: ImageReader | None = None
    checkpoint_every: int = 1000
    checkpoint_interval_minutes: float = 10.0
    busy_timeout_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Any, **overrides: Any) -> "LedgerCliConfig":
        """Defaults from a ``canteen_watch.config.Settings``-like object (``data_dir``, ``database``)."""
        data_dir = Path(getattr(settings, "data_dir", ".cw-data"))
        database = getattr(settings, "database", None)
        url = getattr(settings, "database_url", None) or getattr(database, "url", None) or f"sqlite:///{data_dir / 'canteen-watch.db'}"
        values: dict[str, Any] = {
            "db_url": url,
            "key_dir": data_dir / "keys",
            "publish_dir": data_dir / "checkpoints",
            "busy_timeout_seconds": getattr(database, "busy_timeout_seconds", 30.0),
        }
        values.update(overrides)
        return cls(**values)


def _base(obj: Any) -> LedgerCliConfig:
    if isinstance(obj, LedgerCliConfig):
        return obj
    if obj is not None and hasattr(obj, "data_dir") and hasattr(obj, "database"):
        return LedgerCliConfig.from_settings(obj)
    return LedgerCliConfig()


@ledger_app.callback()
def _ledger(
    ctx: typer.Context,
    db_url: Annotated[Optional[str], typer.Option("--db-url", envvar="CANTEEN_WATCH_DATABASE__URL", help="SQLAlchemy database URL.")] = None,
    key_dir: Annotated[
        Optional[Path], typer.Option("--key-dir", envvar="CANTEEN_WATCH_LEDGER_KEY_DIR", help="Folder of the ledger key pair.")
    ] = None,
    origin: Annotated[
        Optional[str], typer.Option("--origin", envvar="CANTEEN_WATCH_LEDGER_ORIGIN", help="Log origin / key name (keygen).")
    ] = None,
    publish_dir: Annotated[
        Optional[Path],
        typer.Option("--publish-dir", envvar="CANTEEN_WATCH_LEDGER_PUBLISH_DIR", help="Folder of published day checkpoint files."),
    ] = None,
    webhook_url: Annotated[
        Optional[str], typer.Option("--webhook-url", envvar="CANTEEN_WATCH_LEDGER_WEBHOOK_URL", help="POST each checkpoint here.")
    ] = None,
) -> None:
    overrides = {
        k: v
        for k, v in {"db_url": db_url, "key_dir": key_dir, "origin": origin, "publish_dir": publish_dir, "webhook_url": webhook_url}.items()
        if v is not None
    }
    ctx.obj = replace(_base(ctx.obj), **overrides)


def _config(ctx: typer.Context) -> LedgerCliConfig:
    return ctx.obj if isinstance(ctx.obj, LedgerCliConfig) else _base(ctx.obj)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _key_dir(cfg: LedgerCliConfig) -> Path:
    if cfg.key_dir is None:
        raise _fail("no key folder: pass --key-dir or set CANTEEN_WATCH_LEDGER_KEY_DIR")
    return cfg.key_dir


def _factory(cfg: LedgerCliConfig):  # type: ignore[no-untyped-def]
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    from canteen_watch.db.base import make_engine, make_session_factory

    if not cfg.db_url:
        raise _fail("no database URL: pass --db-url or set CANTEEN_WATCH_DATABASE__URL")
    engine = make_engine(cfg.db_url, busy_timeout_seconds=cfg.busy_timeout_seconds)
    try:
        with engine.connect() as connection:
            missing = {"ledger_entries", "ledger_nodes", "ledger_checkpoints"} - set(inspect(connection).get_table_names())
    except SQLAlchemyError as exc:
        raise _fail(f"cannot reach the database: {exc}") from None
    if missing:
        raise _fail(f"the database has no ledger tables ({', '.join(sorted(missing))}); run the migrations first")
    return make_session_factory(engine)


def _verifier(cfg: LedgerCliConfig) -> NoteVerifier:
    try:
        return load_verifier(_key_dir(cfg))
    except (OSError, NoteError) as exc:
        raise _fail(str(exc)) from None


def _ledger_service(cfg: LedgerCliConfig, *, need_signer: bool = False):  # type: ignore[no-untyped-def]
    from canteen_watch.ledger.store import Ledger

    key_dir = _key_dir(cfg)
    signer = None
    if need_signer or (key_dir / PRIVATE_KEY_FILE).exists():
        try:
            signer = load_signer(key_dir)
        except (OSError, NoteError) as exc:
            if need_signer:
                raise _fail(str(exc)) from None
    publisher = None
    if cfg.publish_dir is not None or cfg.webhook_url:
        publisher = CheckpointPublisher(folder=cfg.publish_dir, webhook_url=cfg.webhook_url)
    return Ledger(
        signer=signer,
        verifier=signer.verifier if signer else _verifier(cfg),
        checkpoint_every=cfg.checkpoint_every,
        checkpoint_interval=timedelta(minutes=cfg.checkpoint_interval_minutes),
        publisher=publisher,
    )


@ledger_app.command("keygen")
def keygen_command(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key pair.")] = False,
) -> None:
    """Create the Ed25519 checkpoint key pair (private key file mode 0600, never in the database)."""
    cfg = _config(ctx)
    try:
        files = keygen(_key_dir(cfg), cfg.origin, force=force)
    except (FileExistsError, NoteError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"private key: {files.private_key} (mode 0600; keep it off the database and backups you share)")
    typer.echo(f"public key:  {files.public_key}")
    typer.echo(f"vkey:        {files.vkey_text}")


@ledger_app.command("verify")
def verify_command(
    ctx: typer.Context,
    trusted_checkpoint: Annotated[
        Optional[list[Path]], typer.Option("--trusted-checkpoint", help="A previously trusted signed checkpoint (repeatable).")
    ] = None,
    published: Annotated[
        bool, typer.Option("--published/--no-published", help="Also trust every checkpoint file in the publish folder.")
    ] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Replay chain, Merkle tree and every checkpoint; name the first bad seq. Exit 1 on any failure."""
    from canteen_watch.ledger.verify import verify_ledger

    cfg = _config(ctx)
    verifier = _verifier(cfg)
    notes = [p.read_text(encoding="utf-8") for p in trusted_checkpoint or []]
    if published and cfg.publish_dir is not None and Path(cfg.publish_dir).is_dir():
        notes += [p.read_text(encoding="utf-8") for p in sorted(Path(cfg.publish_dir).glob("*.checkpoint"))]
    factory = _factory(cfg)
    with factory() as session:
        report = verify_ledger(session, verifier, trusted=notes)
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        typer.echo(report.summary())
        for problem in report.problems[:50]:
            typer.echo(f"  {problem}")
        if len(report.problems) > 50:
            typer.echo(f"  … {len(report.problems) - 50} more")
        for warning in report.warnings:
            typer.echo(f"  warning: {warning}")
    raise typer.Exit(0 if report.ok else 1)


@ledger_app.command("prove")
def prove_command(
    ctx: typer.Context,
    seq: Annotated[int, typer.Argument(help="Entry sequence number (0-based leaf index).")],
) -> None:
    """Print an inclusion proof of entry SEQ against the latest signed checkpoint (JSON)."""
    from canteen_watch.ledger.store import LedgerError

    cfg = _config(ctx)
    ledger = _ledger_service(cfg)
    with _factory(cfg)() as session:
        try:
            checkpoint = ledger.latest_checkpoint(session)
        except NoteError as exc:
            raise _fail(f"latest checkpoint does not verify: {exc}", 1) from None
        if checkpoint is None or checkpoint.size <= seq:
            have = checkpoint.size if checkpoint else 0
            raise _fail(f"seq {seq} is not covered by the latest checkpoint (size {have}); run `ledger checkpoint`", 1)
        try:
            proof = ledger.inclusion_proof(session, seq, checkpoint.size)
            entry = ledger.entry(session, seq)
        except LedgerError as exc:
            raise _fail(str(exc), 1) from None
    if proof.root != checkpoint.root:
        raise _fail("the stored tree does not match the signed checkpoint; run `ledger verify`", 1)
    proof.verify()
    typer.echo(json.dumps(proof.as_dict() | {"entry": entry.leaf_text(), "checkpoint": checkpoint.note}, indent=2))


@ledger_app.command("consistency")
def consistency_command(
    ctx: typer.Context,
    old_size: Annotated[int, typer.Argument(help="Earlier tree size.")],
    new_size: Annotated[Optional[int], typer.Argument(help="Later tree size (default: the latest checkpoint's).")] = None,
) -> None:
    """Print a consistency proof between two tree sizes (JSON)."""
    from canteen_watch.ledger.store import LedgerError

    cfg = _config(ctx)
    ledger = _ledger_service(cfg)
    with _factory(cfg)() as session:
        if new_size is None:
            checkpoint = ledger.latest_checkpoint(session)
            if checkpoint is None:
                raise _fail("no checkpoint yet", 1)
            new_size = checkpoint.size
        try:
            proof = ledger.consistency_proof(session, old_size, new_size)
        except LedgerError as exc:
            raise _fail(str(exc), 1) from None
    proof.verify()
    typer.echo(json.dumps(proof.as_dict(), indent=2))


@ledger_app.command("checkpoint")
def checkpoint_command(
    ctx: typer.Context,
    publish: Annotated[bool, typer.Option("--publish/--no-publish", help="Publish to the day file / webhook.")] = True,
) -> None:
    """Sign a checkpoint now (refused if inconsistent with the previous one) and publish it."""
    from canteen_watch.db.base import write_transaction
    from canteen_watch.ledger.store import LedgerError

    cfg = _config(ctx)
    ledger = _ledger_service(cfg, need_signer=True)
    factory = _factory(cfg)
    try:
        with write_transaction(factory) as session:
            checkpoint = ledger.checkpoint(session)
    except LedgerError as exc:
        ledger.discard_pending()
        raise _fail(str(exc), 1) from None
    if checkpoint is None:
        typer.echo("ledger is empty: nothing to sign")
        return
    typer.echo(checkpoint.note, nl=False)
    if publish and ledger.publisher is not None:
        results = ledger.publish_pending(factory)
        if not results:  # already up to date: publish the latest anyway (idempotent)
            results = [ledger.publisher.publish(checkpoint)]
        for result in results:
            typer.echo(f"published: {json.dumps(result)}")


@ledger_app.command("export")
def export_command(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="Output zip file.")],
    violation: Annotated[Optional[str], typer.Option("--violation", help="Violation id (subject violation:ID).")] = None,
    date_from: Annotated[Optional[str], typer.Option("--from", help="First UTC day, YYYY-MM-DD.")] = None,
    date_to: Annotated[Optional[str], typer.Option("--to", help="Last UTC day (inclusive), YYYY-MM-DD.")] = None,
    images_dir: Annotated[Optional[Path], typer.Option("--images-dir", help="Read images from DIR/<bucket>/<key>.")] = None,
    allow_missing_images: Annotated[bool, typer.Option("--allow-missing-images", help="List unreadable images instead of failing.")] = False,
    skip_images: Annotated[bool, typer.Option("--skip-images", help="Do not include images.")] = False,
) -> None:
    """Write an evidence bundle for a violation or a date range (verify it with canteen-watch-verify)."""
    from canteen_watch.db.base import write_transaction
    from canteen_watch.ledger.store import LedgerError

    if (violation is None) == (date_from is None and date_to is None):
        raise _fail("give either --violation ID or --from DATE --to DATE")
    if violation is None and (date_from is None or date_to is None):
        raise _fail("give both --from and --to")
    cfg = _config(ctx)
    reader = folder_reader(images_dir) if images_dir is not None else cfg.image_reader
    if reader is None and not skip_images:
        raise _fail("no image reader: pass --images-dir or --skip-images (the S3 reader is wired by canteen-watch)")
    ledger = _ledger_service(cfg)
    factory = _factory(cfg)
    try:
        with write_transaction(factory) as session:
            summary = export_bundle(
                session,
                ledger,
                out,
                violation_id=violation,
                date_from=date_from,
                date_to=date_to,
                reader=reader,
                allow_missing_images=allow_missing_images,
                skip_images=skip_images,
            )
    except (BundleError, LedgerError, ValueError) as exc:
        ledger.discard_pending()
        raise _fail(str(exc), 1) from None
    ledger.publish_pending(factory)
    typer.echo(
        f"wrote {summary.path}: {summary.entries} entries, {summary.images} images"
        f"{f', {len(summary.missing_images)} missing' if summary.missing_images else ''}, checkpoint size {summary.tree_size}"
    )


@ledger_app.command("status")
def status_command(ctx: typer.Context) -> None:
    """Show the ledger size, the latest checkpoint and the key."""
    cfg = _config(ctx)
    ledger = _ledger_service(cfg)
    with _factory(cfg)() as session:
        size = ledger.size(session)
        try:
            checkpoint = ledger.latest_checkpoint(session)
            cp_text = f"size {checkpoint.size}" if checkpoint else "none"
        except NoteError as exc:
            cp_text = f"DOES NOT VERIFY: {exc}"
    typer.echo(f"entries: {size}")
    typer.echo(f"latest checkpoint: {cp_text}")
    typer.echo(f"key: {ledger.verifier.vkey if ledger.verifier else 'none'}")
    typer.echo(f"signing key present: {'yes' if ledger.signer else 'no'}")
