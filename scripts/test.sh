#!/usr/bin/env bash
# The whole test suite, as CI runs it: the Rust workspace, then the Python
# package (python/tests, which installs the package and its torch/ray extras
# into .venv-python; see scripts/test_python.sh).
#
# Needs: the default model (scripts/setup.sh) and the shared folder's
# stories260K: a test whose model is missing fails, it never skips
# (crates/testdata). Also Debian's chromium and
# chromium-driver for the report's browser test (skipped when absent,
# a failure under CI=true).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --release --workspace
bash scripts/test_python.sh
