"""One reconciler per kind: observe Azure, compare with the spec, write only what differs, report.

Reconcilers import neither kopf nor the Azure SDK; they talk to Azure through the port in `arm`."""
