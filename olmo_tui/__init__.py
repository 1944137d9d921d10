"""olmo-tui: a terminal cockpit for language-model pre-training."""

__version__ = "0.1.0"
