"""``python -m canteen_watch`` runs the CLI."""

from canteen_watch.cli import app

app()
