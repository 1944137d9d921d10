"""Everything that is not drawing: presets, estimates, runs, launchers. Imports neither
textual nor torch (tests/test_import_hygiene.py enforces it)."""
