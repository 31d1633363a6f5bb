"""Runs the whole product locally: both emulators, the operator, and the examples applied to them."""
