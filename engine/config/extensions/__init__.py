"""Registries of components and the extensions that add to them (see engine/extend.py)."""
