"""Shared test fixtures: where the repository's and the real corpus' files are."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "fixtures"
EXAMPLES = REPO / "examples"
REAL = REPO.parent / "shared" / "real"
STORIES = REAL / "models" / "stories260K"


@pytest.fixture(scope="session")
def real() -> Path:
    """The public corpus beside the checkout (../shared/real)."""
    if not REAL.is_dir():
        pytest.skip("../shared/real is not beside this checkout")
    return REAL


@pytest.fixture(scope="session")
def stories(real: Path) -> Path:
    return real / "models" / "stories260K"


@pytest.fixture(autouse=True)
def _own_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test gets the tool's cache in a temp folder, never ~/.cache."""
    monkeypatch.setenv(
        "ETM_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "etm-cache")
    )
