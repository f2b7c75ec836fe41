"""``canteen-watch dashboard``: run ``streamlit run streamlit_app.py`` as a child process.

The configuration file reaches the app through ``$CANTEEN_WATCH_CONFIG``. The repository's
``streamlit_app.py`` is used when it exists (a source checkout); an installed package falls back
to its own copy, :mod:`canteen_watch.dashboard.streamlit_entry`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from canteen_watch.config import CONFIG_ENV_VAR

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_APP = PACKAGE_DIR.parents[1] / "streamlit_app.py"
PACKAGED_APP = PACKAGE_DIR / "streamlit_entry.py"


def app_path() -> Path:
    """The Streamlit entry script."""
    return REPO_APP if REPO_APP.is_file() else PACKAGED_APP


def dashboard_command(config_path: Path | None, port: int, address: str = "127.0.0.1") -> tuple[list[str], dict[str, str]]:
    """The ``streamlit run`` command line and its environment (also used by the browser test)."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(app_path()),
        "--server.port", str(port),
        "--server.address", address,
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--browser.gatherUsageStats", "false",
        "--client.toolbarMode", "minimal",
        "--theme.base", "light",
    ]
    env = dict(os.environ)
    if config_path is not None:
        env[CONFIG_ENV_VAR] = str(Path(config_path).resolve())
    env.setdefault("PYTHONUNBUFFERED", "1")
    return command, env


def run_dashboard(config_path: Path | None, port: int, address: str = "127.0.0.1") -> int:
    """Serve the dashboard on ``address:port`` until Ctrl-C; returns Streamlit's exit status.

    Args:
        config_path: The canteen-watch TOML file (None: ``$CANTEEN_WATCH_CONFIG`` or
            ``./canteen-watch.toml``, as every command).
        port: TCP port.
        address: Interface to listen on (127.0.0.1 unless the dashboard is meant for the network).
    """
    if config_path is not None and not Path(config_path).is_file():
        print(f"error: {config_path}: configuration file not found", file=sys.stderr)
        return 2
    command, env = dashboard_command(config_path, port, address)
    process = subprocess.Popen(command, env=env)
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            return process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()
