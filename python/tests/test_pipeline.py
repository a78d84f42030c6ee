"""attnscope.analyze: the CLI's pipeline in-process, the same files."""

import json
import subprocess

import pyarrow.parquet as pq
import pytest

import attnscope

from test_head import HEADS_PARQUET_COLUMNS


def _run_cli(cli_bin, *args):
    return subprocess.run([str(cli_bin), *map(str, args)], capture_output=True, text=True)


def test_python_analyze_writes_what_the_cli_writes(tmp_path, stories, shakespeare, cli_bin):
    model, tok = stories / "stories260K.bin", stories / "tok512.bin"
    a = attnscope.analyze(str(model), [shakespeare], [32, 64], out=tmp_path / "py", tokenizer=tok, layers=[0, 3])
    o = _run_cli(cli_bin, "analyze", "--model", model, "--tokenizer", tok, "--text", shakespeare,
                 "--ctx", "32,64", "--layers", "0,3", "--out", tmp_path / "cli", "--quiet")
    assert o.returncode == 0, o.stderr
    for f in ["report.json", "heads.csv", "heads.parquet", "report.html"]:
        assert (tmp_path / "py" / f).exists() and (tmp_path / "cli" / f).exists(), f
    cli_report = json.loads((tmp_path / "cli" / "report.json").read_text())
    assert a.report["model"] == cli_report["model"]
    assert len(a.report["runs"]) == 2
    for py_run, cli_run in zip(a.report["runs"], cli_report["runs"]):
        assert py_run["heads"] == cli_run["heads"]
        # every token id, not only the first 8
        assert py_run["token_ids"] == cli_run["token_ids"]
        assert len(py_run["token_ids"]) == py_run["n_tokens"] == py_run["ctx"]
        assert py_run["token_ids"][:8] == py_run["token_ids_head"] and py_run["token_ids"][0] == 1
    assert a.heads.equals(pq.read_table(tmp_path / "cli" / "heads.parquet"))
    assert a.heads.column_names == HEADS_PARQUET_COLUMNS
    assert a.heads.num_rows == 2 * 2 * 8
    # the full ids are the tokenizer's: the same as attnscope.tokenize
    ids = attnscope.tokenize(str(model), shakespeare.read_text(), tokenizer=tok)
    assert a.report["runs"][1]["token_ids"] == ids[:64]


def test_python_analyze_errors_are_exceptions(tmp_path, stories, shakespeare):
    model, tok = stories / "stories260K.bin", stories / "tok512.bin"
    short = tmp_path / "short.txt"
    short.write_text("Once upon a time there was a cat.")
    with pytest.raises(attnscope.AttnscopeError, match="fewer than the context length"):
        attnscope.analyze(str(model), [short], [256], out=tmp_path, tokenizer=tok)
    with pytest.raises(attnscope.AttnscopeError, match="cannot load model"):
        attnscope.analyze(str(tmp_path / "nope.gguf"), [shakespeare], [8], out=tmp_path)
    with pytest.raises(attnscope.AttnscopeError, match="--layers"):
        attnscope.analyze(str(model), [shakespeare], [8], out=tmp_path, tokenizer=tok, layers="9")


def test_capture_rust_matches_the_pipeline(stories, shakespeare):
    """capture_rust hands out what the pipeline measures: same Q/K -> same measures."""
    model, tok = stories / "stories260K.bin", stories / "tok512.bin"
    ids = attnscope.tokenize(str(model), shakespeare.read_text(), tokenizer=tok)[:32]
    layers = attnscope.capture_rust(str(model), ids)
    assert len(layers) == 5
    c = layers[2]
    assert c["q"].shape == (8, 32, 8) and c["k"].shape == (4, 32, 8) and c["w_q"].shape[0] == 8
    t = attnscope.analyze_layer(c["q"], c["k"], c["scale"], layer=2, w_q=c["w_q"], w_k=c["w_k"])
    assert t.num_rows == 8 and t.column("kv_head").to_pylist() == [0, 0, 1, 1, 2, 2, 3, 3]
