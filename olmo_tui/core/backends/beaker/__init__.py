"""The Beaker backend (see backend.py); `BeakerBackend` is what backends/base.py names."""

from .backend import BeakerBackend

__all__ = ["BeakerBackend"]
