"""Classifiers that turn a frame into detections (hat, mask, open storage, pests).

Entry points for the pipeline owner:

* :func:`classifiers.inference.build_classifier` → ``FrameClassifier`` (real one when the shipped
  weights in ``classifiers/models`` are intact, else ``NoModelClassifier``); its
  ``classify(frame_bgr, rois, camera_id=None)`` returns a ``core.ClassifierResult``.
* :mod:`classifiers.cli` — Typer ``app`` / ``build_app(snapshot_loader, polygon_lookup)`` with
  ``train``, ``evaluate``, ``train-roi``.
* :mod:`classifiers.registry` — versioned weights, promotion gate, ``add_promotion_hook``.
* :mod:`classifiers.reviews` — ``export_review_set``, ``review_crop``, ``finetune_from_reviews``.
* :mod:`classifiers.roi_heads` — ``train_roi_head``, ``RoiHead.save/load``, ``roi_head_path``.
"""
