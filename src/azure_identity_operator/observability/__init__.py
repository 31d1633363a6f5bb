"""Operating the operator: Prometheus metrics, structured and redacted logs, and the readiness endpoint.

This package sits low in the layers: the handlers and the ARM adapter record into it, `__main__` serves
it. It imports neither kopf, the Kubernetes client nor the Azure SDK, so every layer may use it.
"""
