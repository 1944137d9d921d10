"""Downstream evaluation: multiple-choice tasks and their log-likelihood scoring (see mc_tasks.py,
mc_scoring.py)."""
