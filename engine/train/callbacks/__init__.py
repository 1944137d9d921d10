"""Built-in callbacks, one file each; registry.py maps config names to classes."""
