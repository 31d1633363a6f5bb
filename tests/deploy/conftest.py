"""Fixtures of the packaging and deployment tests: each installable overlay rendered once per session."""

from __future__ import annotations

import pytest

from .manifests import DEPLOY_DIR, OVERLAYS, Manifest, render


@pytest.fixture(scope="session")
def rendered_overlays() -> dict[str, list[Manifest]]:
    """Each installable overlay rendered once per session: overlay name -> objects."""
    return {name: render(DEPLOY_DIR / "overlays" / name) for name in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay_objects(
    request: pytest.FixtureRequest, rendered_overlays: dict[str, list[Manifest]]
) -> list[Manifest]:
    """The objects of one installable overlay; a test using it runs once per overlay."""
    objects: list[Manifest] = rendered_overlays[request.param]
    return objects
