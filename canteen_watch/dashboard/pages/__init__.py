"""Dashboard pages: each module is a Streamlit page script (``render()`` under ``__main__``)."""
