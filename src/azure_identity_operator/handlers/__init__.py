"""kopf wiring, one module per kind: object body -> model -> reconciler -> status patch and events."""
