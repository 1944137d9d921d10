"""olmo-tui's bundled training engine.

`engine.config` is torch-free (the contract with the app); everything else builds torch objects.
"""
