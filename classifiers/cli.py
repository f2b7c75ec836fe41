"""Typer commands ``train``, ``evaluate`` and ``train-roi`` (mounted by the lead into ``canteen-watch``).

``app`` is ready to mount; :func:`build_app` makes one whose ``train-roi`` pulls labelled
snapshots from the lead's loader (DB/S3) when ``--images`` is not given::

    from classifiers.cli import build_app
    main_app.add_typer(build_app(snapshot_loader=load_roi_examples, polygon_lookup=roi_polygon), name="classifiers")

Run standalone: ``python -m classifiers.cli --help``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Optional

import numpy as np
import typer

from classifiers.nets import TASKS

SnapshotLoader = Callable[[str, str], Iterable[tuple[np.ndarray, str]]]
PolygonLookup = Callable[[str, str], Optional[Sequence[tuple[float, float]]]]


def default_roi_heads_dir() -> Path:
    """``$CANTEEN_WATCH_ROI_HEADS`` or ``.cw-data/roi_heads`` (the lead passes ``data_dir/roi_heads``)."""
    return Path(os.environ.get("CANTEEN_WATCH_ROI_HEADS") or ".cw-data/roi_heads")


# -- plain functions (callable without Typer) ---------------------------------------------------
def train(task: str = "all", *, seed: int = 0, epochs: int | None = None, views: int | None = None, limit: int | None = None, models_dir: Path | None = None, data: Path | None = None, from_reviews: Path | None = None, promote: bool = True, finetune: bool = True, tolerance: float = 0.0, card: bool = True) -> list[dict[str, Any]]:
    """Train (or fine-tune from reviews) one task or all; returns one summary per task."""
    from classifiers.card import write_model_card
    from classifiers.reviews import finetune_from_reviews
    from classifiers.train import train_task

    tasks = list(TASKS) if task == "all" else [task]
    for t in tasks:
        if t not in TASKS:
            raise typer.BadParameter(f"unknown task {t!r}; use all or one of {', '.join(TASKS)}")
    results = []
    for t in tasks:
        if from_reviews is not None:
            results.append(finetune_from_reviews(from_reviews, t, models_dir=models_dir, data_root=data, seed=seed, epochs=epochs or 3, promote=promote, tolerance=tolerance))
        else:
            results.append(train_task(t, data_root=data, models_dir=models_dir, seed=seed, epochs=epochs, views=views, limit=limit, finetune=finetune, promote=promote, tolerance=tolerance))
    if card:
        write_model_card(models_dir)
    return results


def train_roi(camera_id: str, roi_id: str, examples: Sequence[tuple[np.ndarray, str]], *, heads_dir: Path | None = None, models_dir: Path | None = None, polygon: Sequence[tuple[float, float]] | None = None, views: int = 6, seed: int = 0, classifier: Any = None) -> dict[str, Any]:
    """Train and save the few-shot head of one camera ROI; returns a summary."""
    from classifiers.roi_heads import roi_head_path, train_roi_head

    head = train_roi_head(list(examples), classifier, polygon=polygon, views=views, seed=seed, models_dir=models_dir)
    path = head.save(roi_head_path(heads_dir or default_roi_heads_dir(), camera_id, roi_id))
    return {"camera_id": camera_id, "roi_id": roi_id, "path": str(path), "version": head.version, "base_version": head.base_version, "n_open": head.n_open, "n_closed": head.n_closed, "train_accuracy": round(head.train_accuracy, 4)}


def load_folder_examples(images: Path) -> list[tuple[np.ndarray, str]]:
    """``images/open/*`` and ``images/closed/*`` → ``(BGR image, label)`` pairs."""
    from classifiers import data as D

    out = []
    for label in ("open", "closed"):
        for p in D.list_images(Path(images) / label):
            out.append((D.read_image(p), label))
    if not out:
        raise typer.BadParameter(f"{images}: no images in open/ or closed/")
    return out


# -- Typer app ----------------------------------------------------------------------------------
def build_app(snapshot_loader: SnapshotLoader | None = None, polygon_lookup: PolygonLookup | None = None) -> typer.Typer:
    """A Typer app with ``train``, ``evaluate``, ``train-roi``.

    Args:
        snapshot_loader: ``(camera_id, roi_id) -> [(BGR snapshot, "open"|"closed"), ...]`` used by
            ``train-roi`` when ``--images`` is not given (the lead wires S3/DB here).
        polygon_lookup: ``(camera_id, roi_id) -> polygon`` to crop whole snapshots to the ROI; when
            None or returning None the loader's images are taken as ROI crops.
    """
    app = typer.Typer(help="Train, evaluate and adapt the canteen-watch classifiers.", no_args_is_help=True, add_completion=False)

    @app.command("train")
    def train_cmd(
        task: str = typer.Option("all", help="all, hat, mask, pest or storage."),
        seed: int = typer.Option(0, help="Random seed (training is deterministic for a seed and thread count)."),
        epochs: Optional[int] = typer.Option(None, help="Fine-tuning epochs (default per task)."),
        views: Optional[int] = typer.Option(None, help="Augmented views per training image (default per task)."),
        limit: Optional[int] = typer.Option(None, help="Use at most this many images per class (smoke runs)."),
        models_dir: Optional[Path] = typer.Option(None, help="Models folder (default classifiers/models)."),
        data: Optional[Path] = typer.Option(None, help="Data folder (default $CANTEEN_WATCH_DATA or ../shared/data)."),
        from_reviews: Optional[Path] = typer.Option(None, "--from-reviews", help="Fine-tune the active model from an exported review set (DIR/<task>/<class>/)."),
        no_promote: bool = typer.Option(False, help="Register the candidate but do not run the promotion gate."),
        no_finetune: bool = typer.Option(False, help="Frozen backbone + linear head only."),
        tolerance: float = typer.Option(0.0, help="Promotion gate tolerance on F0.5 and AUROC."),
    ) -> None:
        """Train models (tqdm progress), register them and promote those no worse than the active ones."""
        results = train(task, seed=seed, epochs=epochs, views=views, limit=limit, models_dir=models_dir, data=data, from_reviews=from_reviews, promote=not no_promote, finetune=not no_finetune, tolerance=tolerance)
        for r in results:
            promo = r.get("promotion") or {}
            typer.echo(f"{r['task']}: {r.get('version')} promoted={promo.get('promoted')} ({promo.get('reason', 'not gated')}) metrics={json.dumps(r['metrics'], sort_keys=True)}")
        typer.echo(json.dumps({r["task"]: {"version": r.get("version"), "promoted": (r.get("promotion") or {}).get("promoted"), **{k: r["metrics"][k] for k in ("precision", "recall", "f1", "auroc", "threshold")}} for r in results}, sort_keys=True))

    @app.command("evaluate")
    def evaluate_cmd(
        task: str = typer.Option(..., help="hat, mask, pest or storage."),
        images: Path = typer.Option(..., help="Folder with one subfolder per class (hat: covered/bare, mask: with_mask/without_mask, pest: pest/none, storage: open/closed)."),
        crops: bool = typer.Option(False, "--crops", help="hat/mask: images are head/face crops (classify directly) instead of scenes."),
        models_dir: Optional[Path] = typer.Option(None, help="Models folder (default classifiers/models)."),
        threshold: Optional[float] = typer.Option(None, help="Override the shipped threshold."),
        backend: str = typer.Option("auto", help="auto, onnx or torch."),
    ) -> None:
        """Print metrics at the shipped threshold; the last line is one JSON object."""
        from classifiers.evaluate import evaluate_folder

        if task not in TASKS:
            raise typer.BadParameter(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
        try:
            result = evaluate_folder(task, images, crops=crops, models_dir=models_dir, threshold=threshold, backend=backend)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(json.dumps(result, sort_keys=True))

    @app.command("train-roi")
    def train_roi_cmd(
        camera_id: str = typer.Argument(..., help="Camera id."),
        roi_id: str = typer.Argument(..., help="ROI id within the camera."),
        images: Optional[Path] = typer.Option(None, help="Folder with open/ and closed/ subfolders of ROI crops (standalone use)."),
        heads_dir: Optional[Path] = typer.Option(None, help="Where per-ROI heads live (default $CANTEEN_WATCH_ROI_HEADS or .cw-data/roi_heads)."),
        models_dir: Optional[Path] = typer.Option(None, help="Models folder (default classifiers/models)."),
        views: int = typer.Option(6, help="Augmented views per example."),
        seed: int = typer.Option(0, help="Random seed."),
    ) -> None:
        """Train the few-shot open/closed head of one camera ROI from labelled snapshots (~seconds)."""
        polygon = None
        if images is not None:
            examples = load_folder_examples(images)
        elif snapshot_loader is not None:
            examples = list(snapshot_loader(camera_id, roi_id))
            polygon = polygon_lookup(camera_id, roi_id) if polygon_lookup else None
        else:
            raise typer.BadParameter("give --images DIR (open/ and closed/ subfolders); no snapshot loader is connected")
        try:
            summary = train_roi(camera_id, roi_id, examples, heads_dir=heads_dir, models_dir=models_dir, polygon=polygon, views=views, seed=seed)
        except ValueError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(2) from exc
        typer.echo(json.dumps(summary, sort_keys=True))

    return app


app = build_app()

if __name__ == "__main__":
    app()
