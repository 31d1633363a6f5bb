"""The Azure SDK adapters: the only modules of the operator that import `azure.*`.

Each adapter implements one port protocol of `arm` with the SDK's async (`.aio`) clients, so no Azure
call ever blocks kopf's event loop, and translates every SDK exception into an `arm.errors.ArmError`.
"""
