"""attnscope.ray.sweep on a local Ray cluster: one part per task, resumable."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pyarrow.dataset as ds
import pytest

ray = pytest.importorskip("ray")

import attnscope.ray as aray  # noqa: E402


def _texts(tmp_path, shakespeare, stories):
    a = tmp_path / "shakespeare.txt"
    a.write_text(shakespeare.read_text()[:20000])
    b = tmp_path / "story.md"
    b.write_text((stories / "stories260K.md").read_text())
    return [str(a), str(b)]


SWEEP = textwrap.dedent("""
    import sys, ray, attnscope.ray
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    model, tok, out, texts = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    # num_cpus=2 per task: the tasks run one at a time, so a kill lands between parts
    attnscope.ray.sweep([model], texts, [64, 128], out, tokenizer=tok, num_cpus=2)
""")


def _read(out):
    return ds.dataset(str(out), format="parquet").to_table()


def _keys(t):
    return list(zip(t.column("text").to_pylist(), t.column("ctx").to_pylist(),
                    t.column("layer").to_pylist(), t.column("head").to_pylist()))


def test_sweep_killed_halfway_resumes_without_loss_or_duplicates(tmp_path, stories, shakespeare):
    texts = _texts(tmp_path, shakespeare, stories)
    model, tok, out = str(stories / "stories260K.bin"), str(stories / "tok512.bin"), tmp_path / "sweep"
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    env = dict(os.environ, RAY_ADDRESS="")  # always a fresh local cluster
    args = [sys.executable, str(script), model, tok, str(out), *texts]
    p = subprocess.Popen(args, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    parts = []
    while time.time() < deadline and p.poll() is None:
        parts = list(out.glob("part-*.parquet")) if out.exists() else []
        if parts:
            break
        time.sleep(0.02)
    assert parts, f"no part appeared: {p.stdout.read().decode() if p.poll() is not None else 'timeout'}"
    os.killpg(p.pid, signal.SIGKILL)  # the driver and the local Ray cluster with it
    p.wait()
    done_before = sorted(x.name for x in out.glob("part-*.parquet"))
    assert 1 <= len(done_before) <= 4
    before = {x: os.stat(out / x).st_mtime_ns for x in done_before}

    r = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    parts = sorted(x.name for x in out.glob("part-*.parquet"))
    assert len(parts) == 4
    assert not [x for x in os.listdir(out) if ".tmp-" in x]
    for x in done_before:  # finished parts were skipped, not rewritten
        assert os.stat(out / x).st_mtime_ns == before[x]
    t = _read(out)
    assert t.num_rows == 160  # stories260K: 5 layers × 8 heads, × 2 texts × 2 ctx
    keys = _keys(t)
    assert len(set(keys)) == 160
    assert t.column_names[:4] == ["model", "text", "ctx", "layer"]
    assert set(t.column("ctx").to_pylist()) == {64, 128}
    assert len(list((out / "_reports").glob("*.json"))) == 4


def test_sweep_in_process_skips_finished_parts_and_is_readable(tmp_path, stories, shakespeare):
    texts = _texts(tmp_path, shakespeare, stories)
    model, tok, out = str(stories / "stories260K.bin"), str(stories / "tok512.bin"), tmp_path / "sweep"
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, address="local")
    try:
        parts = aray.sweep(model, texts[:1], [32, 64], str(out), layers=[0, 4], tokenizer=tok)
        assert len(parts) == 2 and all(os.path.exists(x) for x in parts)
        os.remove(parts[1])
        (out / (os.path.basename(parts[1]) + ".tmp-1-dead")).write_bytes(b"half a part")
        mtime = os.stat(parts[0]).st_mtime_ns
        again = aray.sweep(model, texts[:1], [32, 64], str(out), layers=[0, 4], tokenizer=tok)
        assert again == parts and os.stat(parts[0]).st_mtime_ns == mtime
        assert not [x for x in os.listdir(out) if ".tmp-" in x]
        t = _read(out)  # the directory as one dataset (what pandas.read_parquet(out) reads)
        assert t.num_rows == 2 * 2 * 8 and set(t.column("layer").to_pylist()) == {0, 4}
        try:
            import pandas as pd
        except ImportError:
            return
        assert len(pd.read_parquet(str(out))) == 2 * 2 * 8
    finally:
        ray.shutdown()
