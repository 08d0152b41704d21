"""Shared test helpers (offline image fixtures)."""
