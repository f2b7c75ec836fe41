"""A real RTSP server for the snapshot tests, built on GStreamer's gst-rtsp-server.

Run it with the *system* interpreter, which has PyGObject (``gi``)::

    /usr/bin/python3 tests/rtsp_server.py PORT [--user NAME --password SECRET]

It serves a moving H.264 test pattern at ``rtsp://127.0.0.1:PORT/test`` and prints one line
``READY rtsp://127.0.0.1:PORT/test`` on stdout once it listens. With ``--user``/``--password`` the
mount requires RTSP basic authentication. It exits on SIGTERM/SIGINT or when stdin closes, so a
test that dies does not leave it behind.

System packages (Debian/Ubuntu)::

    apt-get install -y --no-install-recommends gir1.2-gst-rtsp-server-1.0 python3-gi \\
        gstreamer1.0-rtsp gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \\
        gstreamer1.0-plugins-ugly gstreamer1.0-libav
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

# Small, live, keyframe every 5 frames so a client that connects mid-stream decodes quickly.
PIPELINE = (
    "( videotestsrc is-live=true pattern=ball "
    "! video/x-raw,width=320,height=240,framerate=10/1 "
    "! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=5 bitrate=500 "
    "! rtph264pay name=pay0 pt=96 config-interval=1 )"
)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("port", type=int, help="TCP port to listen on (127.0.0.1)")
    parser.add_argument("--path", default="/test", help="mount point (default /test)")
    parser.add_argument("--user", help="require RTSP basic auth with this user")
    parser.add_argument("--password", default="", help="password for --user")
    return parser.parse_args(argv)


def _add_basic_auth(server: GstRtspServer.RTSPServer, factory: GstRtspServer.RTSPMediaFactory, user: str, password: str) -> None:
    """Require basic auth: only ``user`` may see and construct the media."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    server.set_auth(auth)
    factory.add_role_from_structure(
        Gst.Structure.from_string(
            f"user, {GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS}=(boolean)true, "
            f"{GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT}=(boolean)true"
        )[0]
    )


def main(argv: list[str] | None = None) -> int:
    """Serve until signalled; returns the process exit status."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINE)
    factory.set_shared(True)
    if args.user:
        _add_basic_auth(server, factory, args.user, args.password)
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print(f"ERROR cannot listen on 127.0.0.1:{args.port}", flush=True)
        return 1

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, lambda *_: (loop.quit(), False)[1])

    def _quit_when_stdin_closes() -> None:
        sys.stdin.read()
        GLib.idle_add(loop.quit)

    threading.Thread(target=_quit_when_stdin_closes, daemon=True).start()
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
