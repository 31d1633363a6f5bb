"""Azure Identity Operator: Azure managed identities, their federated credentials and role assignments
declared as Kubernetes objects and kept matching in Azure."""
