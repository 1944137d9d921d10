"""Launch backends: local torchrun (local.py) and Beaker (beaker.py); the protocol is in base.py."""
