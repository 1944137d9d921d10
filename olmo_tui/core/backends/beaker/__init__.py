"""The Beaker backend (see backend.py); `BeakerBackend` is what backends/base.py names.

Imported lazily (PEP 562): the CLI registers the Beaker flags from cli_flags.py on every start,
and that must not load backend.py and what it imports.
"""

__all__ = ["BeakerBackend"]


def __getattr__(name: str):
    if name == "BeakerBackend":
        from .backend import BeakerBackend

        return BeakerBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
