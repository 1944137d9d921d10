"""Runs as records and files: the registry (SQLite), run statuses, reading a run's log and
metrics, torchrun's failure report, runs found on disk. Knows no backend."""
