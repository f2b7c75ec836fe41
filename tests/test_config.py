"""Configuration: valid files load, malformed ones fail with the key path and the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from canteen_watch.config import ConfigError, load_settings

BASE = """
[[sites]]
id = "s1"
name = "School 1"
district = "North"

[[cameras]]
id = "c0"
site = "s1"
source = "http://127.0.0.1/picture"

[[cameras]]
id = "c1"
site = "s1"
source = "rtsp://127.0.0.1/stream"
schedule = { cron = "*/5 * * * *" }
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cw.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_valid_config_loads(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, BASE))
    assert [c.id for c in settings.cameras] == ["c0", "c1"]
    assert settings.cameras[0].schedule.interval_seconds == 300
    assert settings.cameras[1].schedule.cron == "*/5 * * * *"
    assert settings.database_url.startswith("sqlite:///")


def test_starter_config_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib import resources

    monkeypatch.setenv("KITCHEN_CAM_PASSWORD", "secret")
    path = Path(str(resources.files("canteen_watch").joinpath("starter.toml")))
    settings = load_settings(path)
    assert settings.cameras[0].password == "secret"
    assert settings.cameras[1].rois[0].id == "fridge-1"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (('source = "rtsp://127.0.0.1/stream"', 'source = "rtp://127.0.0.1/stream"'), "cameras[1].source: unsupported scheme 'rtp'"),
        (('source = "http://127.0.0.1/picture"', 'source = "127.0.0.1/picture"'), "cameras[0].source: missing scheme"),
        (('schedule = { cron = "*/5 * * * *" }', 'schedule = { cron = "61 * * * *" }'), "cameras[1].schedule: invalid cron expression"),
        (('schedule = { cron = "*/5 * * * *" }', 'schedule = { cron = "* * * * *", interval_seconds = 5 }'), "cameras[1].schedule: give exactly one of"),
        (('site = "s1"\nsource = "rtsp', 'site = "nowhere"\nsource = "rtsp'), "camera 'c1' names unknown site 'nowhere'"),
        (('id = "c1"', 'id = "c0"'), "duplicate camera ids: c0"),
        (('id = "c1"', 'id = "c1"\ncolour = "red"'), "cameras[1].colour: unknown key"),
        (('district = "North"', 'district = ""'), "sites[0].district: String should have at least 1 character"),
        (('id = "c1"', 'id = "c 1"'), "cameras[1].id: String should match pattern"),
        (('[[sites]]', 'timezone = "Mars/Olympus"\n[[sites]]'), "timezone: unknown time zone 'Mars/Olympus'"),
    ],
)
def test_malformed_config_names_key_path(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in BASE
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, BASE.replace(old, new, 1)))
    assert expected in str(info.value)


def test_roi_outside_unit_square_rejected(tmp_path: Path) -> None:
    text = BASE + '\n[[cameras.rois]]\nid = "r1"\npolygon = [[0.1, 0.1], [1.5, 0.1], [0.5, 0.9]]\n'
    with pytest.raises(ConfigError, match=r"cameras\[1\]\.rois\[0\]\.polygon: .*outside 0\.\.1"):
        load_settings(write(tmp_path, text))


def test_not_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[[sites]\nid="))
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.toml")


def test_environment_overrides_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CANTEEN_WATCH_STORAGE__ENDPOINT", "s3.internal:9000")
    monkeypatch.setenv("CANTEEN_WATCH_DATABASE__URL", "postgresql+psycopg://u@db/cw")
    settings = load_settings(write(tmp_path, BASE + '\n[storage]\nbucket = "from-file"\n'))
    assert settings.storage.endpoint == "s3.internal:9000"
    assert settings.storage.bucket == "from-file"
    assert settings.database_url == "postgresql+psycopg://u@db/cw"


def test_password_env_missing_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_CAM_PW", raising=False)
    text = BASE.replace('source = "http://127.0.0.1/picture"', 'source = "http://127.0.0.1/picture"\npassword_env = "NO_SUCH_CAM_PW"')
    with pytest.raises(ConfigError, match=r"cameras\[0\]: password_env names 'NO_SUCH_CAM_PW'"):
        load_settings(write(tmp_path, text))
