"""Camera snapshots: sources, capture with a hard timeout, quality checks, scheduling.

Modules:

* :mod:`snapshots.sources` — one source per URL scheme (HTTP/MJPEG, RTSP, video file, folder,
  local device) and :func:`~snapshots.sources.open_source`;
* :mod:`snapshots.capture` — :func:`~snapshots.capture.capture_frame` and the capture errors;
* :mod:`snapshots.quality` — :func:`~snapshots.quality.assess` (blurred / dark / blocked);
* :mod:`snapshots.schedule` — :func:`~snapshots.schedule.build_scheduler` and
  :func:`~snapshots.schedule.nominal_slot_time`;
* :mod:`snapshots.simulated` — :class:`~snapshots.simulated.SimulatedCameraServer`, the demo's
  cameras; :mod:`snapshots.frames` — its frame providers and a synthetic video writer.
"""
