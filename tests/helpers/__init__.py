"""Shared test helpers: tiny seeded models saved like real ones (tiny_models)."""
