"""The Streamlit dashboard over the service layer.

* :mod:`~canteen_watch.dashboard.app` - entry point: language, login, role menu, logout;
* :mod:`~canteen_watch.dashboard.menus` - which pages each role gets;
* :mod:`~canteen_watch.dashboard.pages` - one module per page (each runs as a Streamlit page script);
* :mod:`~canteen_watch.dashboard.widgets` - shared widgets, formatting, cached reads;
* :mod:`~canteen_watch.dashboard.queries` - read and aggregate functions (SQL, permission-checked);
* :mod:`~canteen_watch.dashboard.drawing` - boxes and ROIs on snapshots;
* :mod:`~canteen_watch.dashboard.services` - database, ledger and storage handles of the process;
* :mod:`~canteen_watch.dashboard.seed` - demo users; :mod:`~canteen_watch.dashboard.launch` - ``streamlit run``.
"""
