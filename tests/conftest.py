"""Fixtures shared by the whole suite live in tests/fixtures/, one module per stand-in or process."""

pytest_plugins = (
    "fixtures.azure_emulator",
    "fixtures.kube_emulator",
    "fixtures.operator",
)
