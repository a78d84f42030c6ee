"""Where the Python tests find real models, as the Rust tests do
(crates/models/src/testdata.rs): ``$ATTNSCOPE_SHARED`` or ``../shared`` beside
the repo, and the cache filled by scripts/setup.sh. A missing model skips the
test, except under CI (``CI=true``), where it fails."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # dense_ref

REPO = Path(__file__).resolve().parents[2]


def _under_ci() -> bool:
    return os.environ.get("CI") in ("true", "1")


def require(path: Path, what: str) -> Path:
    if path.exists():
        return path
    if _under_ci():
        pytest.fail(f"{what} not found at {path} (CI=true: a missing model is a failure)")
    pytest.skip(f"{what} not found at {path}")


def shared_root() -> Path:
    return Path(os.environ.get("ATTNSCOPE_SHARED", REPO.parent / "shared"))


@pytest.fixture(scope="session")
def stories() -> Path:
    """The stories260K directory (llama2.c .bin, .gguf, tok512.bin)."""
    return require(shared_root() / "models" / "stories260K", "stories260K")


@pytest.fixture(scope="session")
def shakespeare() -> Path:
    return require(shared_root() / "texts" / "tinyshakespeare.txt", "tinyshakespeare.txt")


@pytest.fixture(scope="session")
def smollm2() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return require(cache / "attnscope" / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf", "SmolLM2-135M Q4_1 GGUF (scripts/setup.sh)")


@pytest.fixture(scope="session")
def cli_bin() -> Path:
    """The attnscope binary of `cargo build --release` (CI runs cargo test first)."""
    return require(Path(os.environ.get("ATTNSCOPE_BIN", REPO / "target" / "release" / "attnscope")), "the attnscope binary")
