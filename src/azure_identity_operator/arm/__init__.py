"""The only layer that talks to Azure: async SDK clients, credentials, ARM IDs, deterministic names and
the classification of ARM errors."""
