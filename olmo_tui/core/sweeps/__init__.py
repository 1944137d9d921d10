"""Sweeps: planning a grid of variants and their names, the notify hook's spec (queued and run by
olmo_tui.core.launch)."""
