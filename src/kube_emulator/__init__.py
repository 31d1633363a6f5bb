"""A local stand-in for a Kubernetes API server, good enough for kopf, the kubernetes client and kubectl."""
