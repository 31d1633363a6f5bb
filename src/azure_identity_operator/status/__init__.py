"""Conditions, their reasons, and the mapping of outcomes to the Ready condition."""
