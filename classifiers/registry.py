"""Model registry: versioned weight files, sha256, metrics, the active model per task, promotions.

Layout of a models folder (``classifiers/models/`` by default)::

    index.json            {"schema": 1, "active": {task: version}, "models": {version: {...}},
                           "promotions": [{...}, ...]}
    <version>.pt          one self-contained task network (see :mod:`classifiers.nets`)
    MODEL_CARD.md         what the models were trained on and how they scored

A version is ``<task>-<UTC yyyymmddHHMMSS>-<first 8 hex of sha256>``. Files are verified
against their recorded sha256 when loaded, and loaded with ``torch.load(weights_only=True)``.

Promotion gate: a candidate becomes active only if, on the same held-out validation set, it is
no worse than the active model: F0.5 at its own shipped threshold and AUROC both ≥ the active
model's minus ``tolerance``. Every promotion (and refusal) is appended to ``promotions`` and
passed to the ``on_promote`` hooks (the lead connects the ledger there).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from classifiers.nets import TASKS

DEFAULT_MODELS_DIR = Path(__file__).resolve().parent / "models"
INDEX = "index.json"
PromotionHook = Callable[[dict[str, Any]], None]
_HOOKS: list[PromotionHook] = []
_LOCK = threading.Lock()


def add_promotion_hook(hook: PromotionHook) -> None:
    """Register ``hook(record)`` called after every promotion in any registry (e.g. the ledger)."""
    _HOOKS.append(hook)


def remove_promotion_hook(hook: PromotionHook) -> None:
    if hook in _HOOKS:
        _HOOKS.remove(hook)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def models_dir_default() -> Path:
    """``$CANTEEN_WATCH_MODELS`` or the shipped ``classifiers/models``."""
    env = os.environ.get("CANTEEN_WATCH_MODELS")
    return Path(env) if env else DEFAULT_MODELS_DIR


class RegistryError(RuntimeError):
    """The index or a weight file is missing, unreadable or fails its sha256 check."""


class Registry:
    """Read and update one models folder.

    Args:
        root: The models folder (created on first write).
        on_promote: Called with the promotion record after each successful promotion.
    """

    def __init__(self, root: Path | str | None = None, on_promote: PromotionHook | None = None):
        self.root = Path(root) if root is not None else models_dir_default()
        self.on_promote = on_promote

    # -- reading ---------------------------------------------------------------------------
    @property
    def index_path(self) -> Path:
        return self.root / INDEX

    def index(self) -> dict[str, Any]:
        if not self.index_path.is_file():
            return {"schema": 1, "active": {}, "models": {}, "promotions": []}
        try:
            data = json.loads(self.index_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise RegistryError(f"{self.index_path}: unreadable model index: {exc}") from exc
        for key, empty in (("active", {}), ("models", {}), ("promotions", [])):
            data.setdefault(key, empty)
        return data

    def active(self, task: str) -> dict[str, Any] | None:
        """The active model record of ``task`` (with ``version`` and ``path``), or None."""
        data = self.index()
        version = data["active"].get(task)
        if not version:
            return None
        return self.record(version, data)

    def record(self, version: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
        data = data or self.index()
        if version not in data["models"]:
            raise RegistryError(f"unknown model version {version!r}")
        rec = dict(data["models"][version])
        rec["version"] = version
        rec["path"] = str(self.root / rec["file"])
        return rec

    def has_all_active(self, tasks: tuple[str, ...] = TASKS) -> bool:
        try:
            return all(self.active(t) is not None and Path(self.active(t)["path"]).is_file() for t in tasks)
        except RegistryError:
            return False

    def verified_path(self, version: str) -> Path:
        """Path of a version's weight file after checking its sha256."""
        rec = self.record(version)
        path = Path(rec["path"])
        if not path.is_file():
            raise RegistryError(f"{path}: weight file of {version} is missing")
        digest = sha256_file(path)
        if digest != rec["sha256"]:
            raise RegistryError(f"{path}: sha256 {digest[:12]}… does not match the index ({rec['sha256'][:12]}…)")
        return path

    # -- writing ---------------------------------------------------------------------------
    def _write(self, data: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.index_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(self.index_path)

    def register(self, weight_file: Path | str, task: str, metrics: dict[str, Any], info: dict[str, Any] | None = None, move: bool = True) -> str:
        """Add a weight file as a candidate version (not active). Returns the version."""
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        weight_file = Path(weight_file)
        digest = sha256_file(weight_file)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
        version = f"{task}-{stamp}-{digest[:8]}"
        target = self.root / f"{version}.pt"
        self.root.mkdir(parents=True, exist_ok=True)
        if weight_file.resolve() != target.resolve():
            (shutil.move if move else shutil.copyfile)(str(weight_file), str(target))
        with _LOCK:
            data = self.index()
            data["models"][version] = {
                "task": task,
                "file": target.name,
                "sha256": digest,
                "size_bytes": target.stat().st_size,
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "metrics": metrics,
                "threshold": metrics.get("threshold"),
                **(info or {}),
            }
            self._write(data)
        return version

    @staticmethod
    def gate(candidate: dict[str, Any], active: dict[str, Any] | None, tolerance: float = 0.0) -> tuple[bool, str]:
        """Decide whether ``candidate`` metrics are no worse than ``active`` (same validation set)."""
        if active is None:
            return True, "no active model"
        worse = []
        for key in ("f0_5", "auroc"):
            new, old = candidate.get(key), active.get(key)
            if new is None or old is None:
                continue
            if float(new) < float(old) - tolerance:
                worse.append(f"{key} {new:.4f} < {old:.4f}")
        if worse:
            return False, "worse than active: " + ", ".join(worse)
        return True, "no worse than active on the validation set"

    def promote(self, version: str, candidate_metrics: dict[str, Any] | None = None, active_metrics: dict[str, Any] | None = None, tolerance: float = 0.0, force: bool = False) -> dict[str, Any]:
        """Make ``version`` active if it passes the gate; record and announce the decision.

        ``candidate_metrics`` and ``active_metrics`` must come from the same held-out validation
        set (the trainer re-scores the active model on it). Returns the promotion record, whose
        ``promoted`` says what happened.
        """
        with _LOCK:
            data = self.index()
            rec = self.record(version, data)
            task = rec["task"]
            previous = data["active"].get(task)
            cand = candidate_metrics or rec.get("metrics", {})
            ok, reason = (True, "forced") if force else self.gate(cand, active_metrics if previous else None, tolerance)
            record = {
                "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "task": task,
                "version": version,
                "sha256": rec["sha256"],
                "previous": previous,
                "promoted": bool(ok),
                "reason": reason,
                "candidate_metrics": cand,
                "active_metrics": active_metrics,
            }
            if ok:
                data["active"][task] = version
            data["promotions"].append(record)
            self._write(data)
        if ok:
            for hook in ([self.on_promote] if self.on_promote else []) + list(_HOOKS):
                hook(dict(record))
        return record

    def prune(self, keep_inactive: int = 0) -> list[str]:
        """Delete weight files of inactive versions beyond the newest ``keep_inactive`` per task."""
        removed = []
        with _LOCK:
            data = self.index()
            active = set(data["active"].values())
            for task in TASKS:
                inactive = sorted((v for v, r in data["models"].items() if r["task"] == task and v not in active), key=lambda v: data["models"][v]["created"], reverse=True)
                for version in inactive[keep_inactive:]:
                    path = self.root / data["models"][version]["file"]
                    if path.exists():
                        path.unlink()
                    data["models"][version]["file_removed"] = True
                    removed.append(version)
            data["models"] = {v: r for v, r in data["models"].items() if not r.get("file_removed")}
            self._write(data)
        return removed
