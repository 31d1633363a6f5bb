"""A local stand-in for Azure Resource Manager, the Entra token endpoint and the managed-identity endpoints,
faithful to the wire contract the real Azure SDK relies on."""
