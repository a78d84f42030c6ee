"""The same real model through the CLI (Rust decoder on the GGUF) and through
attnscope.torch.capture (transformers on the same GGUF): the same measures.

transformers' GGUF tokenizer for SmolLM2 drops the Digits pre-tokenizer, so
transformers is fed the CLI's token ids from report.json."""

import json
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("gguf")

import attnscope  # noqa: E402
from attnscope.torch import capture  # noqa: E402

CTX = 64
# Every measure of the field, compared within REL. Not compared: zero_sum_residual
# and shift_consistency measure rounding (their values are at 1e-15 / 1e-6 and
# differ between any two implementations), and method/check_rows are settings.
FLOATS = ["attention_entropy", "effective_rank", "stable_rank", "effective_rank_learned", "spectral_gap",
          "participation_ratio", "top1pct_share", "key_coherence", "energy_leverage_spearman"]
INTS = ["n", "d", "rank_bound", "numerical_rank", "k90", "k99", "k90_learned", "argmax_key"]
REL = 1e-5


def test_cli_and_capture_agree_on_every_head(tmp_path, smollm2, cli_bin):
    text = "/usr/share/common-licenses/Apache-2.0"
    out = tmp_path / "cli"
    o = subprocess.run([str(cli_bin), "analyze", "--model", str(smollm2), "--text", text, "--ctx", str(CTX),
                        "--out", str(out), "--quiet"], capture_output=True, text=True)
    assert o.returncode == 0, o.stderr
    report = json.loads((out / "report.json").read_text())
    ids = report["runs"][0]["token_ids"]
    assert len(ids) == CTX
    cli = pq.read_table(out / "heads.parquet").to_pylist()

    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(smollm2.parent), gguf_file=smollm2.name, dtype=torch.float32).eval()
    with torch.no_grad(), capture(model) as cap:
        model(torch.tensor([ids]), use_cache=False)
    py = cap.analyze().to_pylist()
    assert len(py) == len(cli) == 30 * 9
    worst = {}
    for a, b in zip(cli, py):
        assert (a["layer"], a["head"], a["kv_head"]) == (b["layer"], b["head"], b["kv_head"])
        for m in INTS:
            assert a[m] == b[m], (a["layer"], a["head"], m, a[m], b[m])
        for m in FLOATS:
            x, y = a[m], b[m]
            if x is None or y is None:  # e.g. spearman undefined: both must say so
                assert x == y, (a["layer"], a["head"], m, x, y)
                continue
            rel = abs(x - y) / max(abs(x), 1e-300)
            worst[m] = max(worst.get(m, 0.0), rel)
    print("worst relative difference per measure:", worst)
    assert all(v <= REL for v in worst.values()), worst
