"""The emulated Azure Resource Manager: request routing, RBAC, and the resource providers behind it."""
