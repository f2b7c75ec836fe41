"""canteen-watch dashboard: ``streamlit run streamlit_app.py`` (or ``canteen-watch dashboard``).

The configuration file comes from ``$CANTEEN_WATCH_CONFIG`` (else ``./canteen-watch.toml``).
Everything is in :mod:`canteen_watch.dashboard`.
"""

from canteen_watch.dashboard.app import main

main()
