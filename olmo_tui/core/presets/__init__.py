"""Presets: the catalog (built-in and user presets with one-line summaries) and saving a user preset."""
