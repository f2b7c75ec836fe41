"""Dashboard pieces without a browser: drawing boxes and ROIs, the demo users, the launch command,
Markdown escaping of people's text."""

from __future__ import annotations

import sys
from pathlib import Path

from sqlalchemy import func, select

from canteen_watch.auth import authenticate
from canteen_watch.dashboard import drawing
from canteen_watch.dashboard.launch import app_path, dashboard_command
from canteen_watch.dashboard.queries import DetectionBox
from canteen_watch.dashboard.seed import DEMO_PASSWORD, seed_demo_users
from canteen_watch.dashboard.widgets import md_escape
from canteen_watch.workflows.models import UserRow
from tests.test_dashboard_support import jpeg, write_config


def test_annotate_draws_the_box_in_the_label_colour_and_the_roi() -> None:
    image = drawing.open_image(jpeg())
    assert image is not None and image.size == (320, 240)
    box = DetectionBox(label="pest", score=0.91, x1=200, y1=120, x2=260, y2=170, model_version="v1", roi_id=None)
    roi = {"id": "shelf", "polygon": [[0.05, 0.1], [0.45, 0.1], [0.45, 0.9], [0.05, 0.9]]}
    out = drawing.annotate(image, [box], [roi], highlight="pest", captions={"pest": "虫鼠害"})
    assert out.size == image.size and out is not image
    assert out.getpixel((230, 170)) == drawing.LABEL_COLOURS["pest"], "bottom edge of the box"
    assert out.getpixel((60, 150))[1] > image.getpixel((60, 150))[1], "the ROI is tinted green"
    assert image.getpixel((230, 170)) != drawing.LABEL_COLOURS["pest"], "the original is untouched"
    png = drawing.to_png(out)
    assert png.startswith(b"\x89PNG")


def test_boxes_outside_the_image_are_clipped_and_garbage_is_not_an_image() -> None:
    image = drawing.placeholder(100, 80)
    box = DetectionBox(label="no_hat", score=0.5, x1=-20, y1=-5, x2=500, y2=400, model_version="v", roi_id=None)
    out = drawing.annotate(image, [box])
    assert out.getpixel((99, 40)) == drawing.LABEL_COLOURS["no_hat"]
    assert drawing.open_image(b"not an image") is None
    assert drawing.thumbnail(b"nope") is None
    thumb = drawing.thumbnail(jpeg(), max_side=64)
    assert thumb is not None and drawing.open_image(thumb).size == (64, 48)
    assert drawing.placeholder(None, 0).size == (640, 480)


def test_seed_demo_users_is_idempotent(tmp_path: Path, s3_server) -> None:  # type: ignore[no-untyped-def]
    from canteen_watch.config import load_settings
    from canteen_watch.runtime import open_database

    config = write_config(tmp_path, s3_server.endpoint, f"sqlite:///{tmp_path / 'seed.db'}")
    settings = load_settings(config)
    first = seed_demo_users(settings)
    assert [(u, r, s) for u, _p, r, s in first] == [
        ("inspector", "inspector", "district Central"), ("manager", "canteen_manager", "site s-a"), ("auditor", "auditor", "city-wide"),
        ("registrar", "registrar", "district Central"), ("admin", "admin", "city-wide"),
    ]
    assert {p for _u, p, _r, _s in first} == {DEMO_PASSWORD}
    again = seed_demo_users(settings)
    assert again == first
    engine, sessions = open_database(settings, migrate=False)
    try:
        with sessions() as session:
            assert session.scalar(select(func.count()).select_from(UserRow)) == 5
        manager = authenticate(sessions, "manager", DEMO_PASSWORD)
        assert [str(s) for s in manager.scopes] == ["site:s-a"]
    finally:
        engine.dispose()


def test_launch_command_passes_the_config_through_the_environment(tmp_path: Path) -> None:
    config = tmp_path / "demo.toml"
    config.write_text("", encoding="utf-8")
    command, env = dashboard_command(config, 8601, "0.0.0.0")
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert command[4] == str(app_path()) and Path(command[4]).name == "streamlit_app.py"
    assert command[command.index("--server.port") + 1] == "8601"
    assert command[command.index("--server.address") + 1] == "0.0.0.0"
    assert command[command.index("--server.headless") + 1] == "true"
    assert env["CANTEEN_WATCH_CONFIG"] == str(config.resolve())
    assert Path(app_path()).read_text(encoding="utf-8") == (Path(app_path()).parent / "canteen_watch/dashboard/streamlit_entry.py").read_text(encoding="utf-8"), "the packaged copy matches"


def test_run_dashboard_refuses_a_missing_config(tmp_path: Path) -> None:
    from canteen_watch.dashboard.launch import run_dashboard

    assert run_dashboard(tmp_path / "missing.toml", 8602) == 2


def test_md_escape_shows_people_s_text_literally() -> None:
    hostile = "[click](http://evil) ![x](http://evil/p.png) **bold** <b>x</b> # head\nline"
    escaped = md_escape(hostile)
    assert "\\[click\\]\\(http\\:" in escaped and "\\!\\[x\\]" in escaped and "\\*\\*bold\\*\\*" in escaped and "\\<b\\>" in escaped
    assert "\\# head  \nline" in escaped
    assert md_escape(None) == ""
