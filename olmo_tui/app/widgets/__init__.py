"""olmo-tui Textual app (see olmo_tui/app/app.py)."""
