"""Binary metrics with the violation as the positive class, and threshold selection."""

from __future__ import annotations

import numpy as np


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties counted half); NaN when one class is absent."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), np.float64)
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def binary_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float | int]:
    """precision, recall, f1, f0.5, auroc and tp/fp/tn/fn at ``threshold`` (score ≥ threshold ⇒ positive)."""
    labels = np.asarray(labels).astype(bool)
    pred = np.asarray(scores) >= threshold
    tp = int((pred & labels).sum())
    fp = int((pred & ~labels).sum())
    tn = int((~pred & ~labels).sum())
    fn = int((~pred & labels).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    f05 = 1.25 * precision * recall / (0.25 * precision + recall) if precision + recall else 0.0
    return {
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "f0_5": round(f05, 4),
        "auroc": round(auroc(labels, scores), 4),
        "threshold": round(float(threshold), 4),
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "n": int(len(labels)),
    }


def choose_threshold(labels: np.ndarray, scores: np.ndarray, min_precision: float | None = None) -> float:
    """Threshold favouring precision.

    With ``min_precision``: the lowest threshold whose precision reaches it (most recall at that
    precision); otherwise, or when no threshold reaches it, the threshold maximising F0.5.
    Thresholds are placed midway between neighbouring distinct scores, so they are robust to
    fp16 rounding.
    """
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    uniq = np.unique(scores)
    if len(uniq) == 1:
        return float(uniq[0])
    cands = np.concatenate([[uniq[0]], (uniq[1:] + uniq[:-1]) / 2])
    best_f, best = -1.0, (0.0, 0.0)
    plateau: list[float] = []  # thresholds giving the best F0.5 with the same confusion matrix
    reach = []
    for t in cands:
        pred = scores >= t
        tp = float((pred & labels).sum())
        fp = float((pred & ~labels).sum())
        fn = float((~pred & labels).sum())
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 1.25 * p * r / (0.25 * p + r) if p + r else 0.0
        if f > best_f:
            best_f, best, plateau = f, (tp, fp), [float(t)]
        elif f == best_f and (tp, fp) == best:
            plateau.append(float(t))
        if min_precision is not None and p >= min_precision and r > 0:
            reach.append((r, -t))
    if reach:
        return float(-max(reach)[1])
    # ties: the middle of the best plateau (in logit space), not its low edge, so that a saturated
    # validation set does not push the threshold to the lowest score that still separates it
    lo, hi = min(plateau), max(plateau)
    if lo == hi:
        return lo
    eps = 1e-6
    logit = lambda v: float(np.log(np.clip(v, eps, 1 - eps) / (1 - np.clip(v, eps, 1 - eps))))  # noqa: E731
    if 0.0 < lo and hi < 1.0:
        return float(1.0 / (1.0 + np.exp(-(logit(lo) + logit(hi)) / 2)))
    return (lo + hi) / 2
