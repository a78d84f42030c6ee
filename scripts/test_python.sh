#!/usr/bin/env bash
# The Python package's tests (python/tests), as CI runs them after `cargo test`.
#
# Default: a virtual environment (.venv-python, reused when it exists) gets
# `pip install ".[torch,ray,test]"`: maturin builds the extension in release
# mode into target/ (shared with cargo, so after `cargo test --release` only
# the binding crate is compiled), then pytest runs.
#
# ATTNSCOPE_TEST_PYTHON=/path/to/python: use an interpreter that already has
# torch, transformers, gguf, accelerate, ray, pyarrow, pandas and pytest; the package is then
# installed with --no-deps into .pytarget/ and put first on PYTHONPATH (that
# interpreter's environment is not modified).
#
# Extra arguments go to pytest (e.g. -k head).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ -n "${ATTNSCOPE_TEST_PYTHON:-}" ]]; then
    PY="$ATTNSCOPE_TEST_PYTHON"
    export PATH="$(dirname "$PY"):$PATH"  # maturin beside it
    rm -rf .pytarget
    "$PY" -m pip install --quiet --no-deps --no-build-isolation --target .pytarget . \
        || "$PY" -m pip install --quiet --no-deps --target .pytarget .
    export PYTHONPATH="$PWD/.pytarget${PYTHONPATH:+:$PYTHONPATH}"
else
    VENV="$(realpath -m "${ATTNSCOPE_VENV:-.venv-python}")"
    [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
    PY="$VENV/bin/python"
    "$PY" -m pip install --quiet --upgrade pip
    "$PY" -m pip install --quiet ".[torch,ray,test]" gguf accelerate
fi

# Run from outside the source tree, so that `import attnscope` is the installed package.
cd python/tests
exec "$PY" -m pytest -q -p no:cacheprovider "$@" .
