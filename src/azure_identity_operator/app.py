"""Composition root: kopf startup settings and the dependencies every handler uses."""
