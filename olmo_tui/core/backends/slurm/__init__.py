from .backend import SlurmBackend

__all__ = ["SlurmBackend"]
