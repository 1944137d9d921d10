"""The training step: see train_module.py."""
