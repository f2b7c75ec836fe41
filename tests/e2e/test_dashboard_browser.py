"""End to end: ``streamlit run`` on 127.0.0.1 driven by headless Chromium through Playwright.

A manager logs in and confirms a case in the review queue; an auditor logs in and finds the
review in the audit trail; an administrator opens every page. A screenshot of each page goes to
``test-artifacts/`` (git-ignored). Real parts throughout: the SeaweedFS S3 server, a SQLite file,
the ledger with a signing key, Argon2 logins.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from canteen_watch.core import utcnow
from canteen_watch.dashboard.launch import dashboard_command
from canteen_watch.i18n import CATALOGUES, t
from canteen_watch.workflows.models import ReviewRow
from tests.test_dashboard_support import PASSWORD, DashEnv, make_dash

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
LANG = "zh-CN"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium (CI installs it: apt-get install chromium)"),
]


def zh(key: str, **values: object) -> str:
    return t(key, LANG, **values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def deployment(tmp_path: Path, s3_server, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[DashEnv, str]]:  # type: ignore[no-untyped-def]
    env = make_dash(tmp_path, s3_server.endpoint, f"sqlite:///{tmp_path / 'e2e.db'}", monkeypatch)
    now = utcnow()
    env.open_case("pest", "cam-a", now - timedelta(minutes=20))
    env.open_case("no_hat", "cam-c", now - timedelta(hours=3))
    env.open_case("open_storage", "cam-b", now - timedelta(days=4), box=(20.0, 30.0, 140.0, 200.0))
    env.camera_health("cam-a", online=True, last_success_at=now)
    env.camera_health("cam-b", online=False, last_success_at=now - timedelta(hours=6), events=[("offline", "3 consecutive failed grabs; last: timeout")])
    env.camera_health("cam-c", online=True, last_success_at=now, quality_alert="blurred", events=[("quality_alert", "blurred for 3 consecutive frames")])
    port = free_port()
    command, environ = dashboard_command(env.config_path, port)
    log = (tmp_path / "streamlit.log").open("wb")
    process = subprocess.Popen(command, env=environ, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"streamlit did not start: {(tmp_path / 'streamlit.log').read_text(errors='replace')[-3000:]}")
            time.sleep(0.3)
        yield env, url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        env.services.close()


def _login(page, url: str, username: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(url)
    page.get_by_label(zh("login.username")).fill(username)
    page.get_by_label(zh("login.password")).fill(PASSWORD)
    page.get_by_role("button", name=zh("login.submit")).click()
    page.get_by_role("button", name=zh("login.logout")).wait_for(timeout=30_000)


def _logout(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name=zh("login.logout")).click()
    page.get_by_label(zh("login.username")).wait_for(timeout=30_000)


def _open(page, title_key: str, expect: str | None = None) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("link", name=zh(title_key)).first.click()
    page.get_by_role("heading", name=zh(title_key)).first.wait_for(timeout=30_000)
    if expect:
        page.get_by_text(expect).first.wait_for(timeout=30_000)
    _settle(page)


def _settle(page) -> None:  # type: ignore[no-untyped-def]
    """Wait until Streamlit has finished the script run: no running indicator for a while."""
    status = page.locator('[data-testid="stStatusWidget"]')
    quiet = 0
    deadline = time.monotonic() + 30
    while quiet < 4 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
        quiet = 0 if status.is_visible() else quiet + 1


def _shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    """Screenshot of the whole page (Streamlit scrolls inside its own container, so grow the window)."""
    ARTIFACTS.mkdir(exist_ok=True)
    size = page.viewport_size
    height = page.evaluate("Math.max(...Array.from(document.querySelectorAll('section, [data-testid=stMain], [data-testid=stAppViewContainer] *')).map(e => e.scrollHeight), 800)")
    page.set_viewport_size({"width": size["width"], "height": min(int(height) + 80, 4000)})
    page.wait_for_timeout(500)
    page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)
    page.set_viewport_size(size)


def test_manager_confirms_and_auditor_finds_it(deployment: tuple[DashEnv, str]) -> None:
    from playwright.sync_api import sync_playwright

    env, url = deployment
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 1000}, locale="zh-CN")
            page.set_default_timeout(30_000)
            page.goto(url)
            page.get_by_label(zh("login.username")).wait_for()
            _shot(page, "login")

            # the manager of s-a sees only their case, confirms it in one click
            _login(page, url, "manager")
            page.get_by_role("heading", name=zh("page.review")).first.wait_for()
            _settle(page)
            case_title = zh("review.case_title", id=1, label=zh("label.pest"), tier=zh("tier.short", tier=1))
            page.get_by_text(case_title).wait_for()
            assert page.get_by_role("link", name=zh("page.overview")).count() == 0, "managers have no overview"
            assert page.get_by_role("link", name=zh("page.audit")).count() == 0, "managers have no audit trail"
            _shot(page, "review")
            page.get_by_role("button", name=zh("review.confirm")).click()
            page.get_by_text(zh("review.confirmed", count=1)).wait_for()
            _settle(page)
            with env.sessions() as session:
                reviews = session.scalars(select(ReviewRow).where(ReviewRow.violation_id == 1)).all()
            assert [(r.outcome, r.user_id, r.role) for r in reviews] == [("confirmed", env.user("manager").id, "canteen_manager")]
            assert ("violation.reviewed", f"user:{env.user('manager').id}") in env.ledger("violation:1")
            _open(page, "page.rectification", zh("rect.case_title", id=1, label=zh("label.pest"), site="No. 1 Primary School canteen"))
            _shot(page, "rectification")
            _open(page, "page.cameras", zh("camera.detail_title", camera="cam-a"))
            _shot(page, "cameras")
            _logout(page)

            # the auditor finds the review in the audit trail
            _login(page, url, "auditor")
            page.get_by_role("heading", name=zh("page.audit")).first.wait_for()
            _settle(page)
            page.get_by_label(zh("audit.case")).first.fill("1")
            page.get_by_label(zh("audit.case")).first.press("Enter")
            _settle(page)
            page.get_by_text(re.compile(r"· violation\.reviewed · violation:1$")).first.wait_for()
            page.get_by_text(zh("audit.proof")).first.wait_for()
            _shot(page, "audit")
            page.get_by_role("tab", name=zh("audit.tab_verify")).click()
            page.get_by_role("button", name=zh("audit.verify_now")).click()
            page.get_by_text(prefix("audit.verify_ok")).first.wait_for()
            _shot(page, "audit-verify")
            _open(page, "page.models", zh("models.versions"))
            _shot(page, "models")
            _logout(page)

            # the administrator sees every page
            _login(page, url, "admin")
            for key, expect in (("page.overview", zh("overview.by_district")), ("page.institutions", zh("inst.tab_list"))):
                _open(page, key, expect)
                _shot(page, key.split(".")[1])
        finally:
            browser.close()


def prefix(key: str) -> str:
    """The fixed start of a message (before its first field)."""
    return CATALOGUES[LANG][key].split("{", 1)[0]
