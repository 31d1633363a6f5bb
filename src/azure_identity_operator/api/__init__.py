"""The custom resources: API group, version, finalizer and typed models of each kind's spec and status."""
