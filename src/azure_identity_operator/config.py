"""Typed operator settings read from the environment."""
