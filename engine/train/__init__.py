"""The fit loop (trainer.py), the Callback base (callback.py) and the built-in callbacks."""
