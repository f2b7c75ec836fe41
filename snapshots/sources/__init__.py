"""Frame sources, one module per kind, chosen by the camera URL's scheme.

==========================  ==============================  =====================
scheme                      source                          grab returns
==========================  ==============================  =====================
``http``, ``https``         :class:`~.http.HttpSource`      JPEG bytes as sent
``rtsp``, ``rtsps``         :class:`~.rtsp.RtspSource`      BGR array
``file``                    :class:`~.video.VideoFileSource` BGR array
``folder``                  :class:`~.folder.FolderSource`  JPEG bytes / BGR array
``device``                  :class:`~.device.DeviceSource`  BGR array
==========================  ==============================  =====================
"""

from __future__ import annotations

from urllib.parse import urlsplit

from canteen_watch.config import CameraConfig
from snapshots.errors import SourceUnavailableError
from snapshots.sources.base import Grabbed, Source
from snapshots.sources.device import DeviceSource
from snapshots.sources.folder import FolderSource
from snapshots.sources.http import HttpSource
from snapshots.sources.rtsp import RtspSource
from snapshots.sources.video import VideoFileSource

SOURCES: dict[str, type[Source]] = {
    "http": HttpSource,
    "https": HttpSource,
    "rtsp": RtspSource,
    "rtsps": RtspSource,
    "file": VideoFileSource,
    "folder": FolderSource,
    "device": DeviceSource,
}
"""Source class per URL scheme."""


def open_source(camera: CameraConfig) -> Source:
    """Create the source for ``camera`` from its URL scheme (cheap: nothing is contacted yet).

    Raises:
        SourceUnavailableError: The scheme has no source (the config validator normally stops
            this earlier).
    """
    scheme = urlsplit(camera.source).scheme.lower()
    try:
        cls = SOURCES[scheme]
    except KeyError:
        raise SourceUnavailableError(camera.id, f"no source for scheme {scheme!r}") from None
    return cls(camera)


__all__ = ["Grabbed", "SOURCES", "Source", "open_source"]
