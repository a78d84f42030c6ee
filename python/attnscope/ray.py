"""Sweeps of models × texts × context lengths on Ray, into one Parquet dataset.

    import attnscope.ray
    attnscope.ray.sweep(["HuggingFaceTB/SmolLM2-135M", "model.gguf"],
                        ["a.txt", "b.txt"], [256, 1024], out="/shared/sweep")

One Ray task per (model, text, ctx) runs the Rust ``analyze`` pipeline in the
worker (exactly :func:`attnscope.analyze`) and writes one part,
``out/part-<model>-<text>-ctx<N>-<hash>.parquet``: heads.parquet's columns
with ``model`` in front. Every part has the same schema, so the directory
reads as one table in pandas (``pd.read_parquet(out)``), polars
(``pl.read_parquet(f"{out}/*.parquet")``), DuckDB
(``read_parquet('out/*.parquet')``) and Spark (``spark.read.parquet(out)``).
Each run's report.json (with its full token ids) goes to
``out/_reports/`` (a leading underscore: dataset readers skip it).

Resumable: a part is written to a temporary name and renamed into place, so
a part that exists is complete; a rerun skips finished parts and removes
temporary files that a killed run left behind. Run one sweep per ``out`` at a time.

Cluster: ``sweep`` calls ``ray.init()`` when Ray is not initialised yet, which
starts a local cluster, or connects to the one named by ``RAY_ADDRESS``
(e.g. ``ray://head:10001`` for a KubeRay cluster). Models, texts and ``out``
must then be paths that every node sees (a shared volume) or hub ids.
Ray does all the scheduling; this module only creates the tasks.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import uuid
from typing import Iterable, List, Optional, Sequence, Union

import pyarrow as pa
import pyarrow.parquet as pq

import attnscope

__all__ = ["sweep", "part_name"]


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "_", s).strip("_")[-48:] or "x"


def part_name(model: str, text: str, ctx: int, layers: Optional[str] = None) -> str:
    """The file name of the part of one (model, text, ctx) task."""
    key = json.dumps([model, text, int(ctx), layers])
    h = hashlib.sha256(key.encode()).hexdigest()[:10]
    m = _slug(os.path.basename(model.rstrip("/")) or model)
    t = _slug(os.path.basename(text))
    return f"part-{m}-{t}-ctx{int(ctx)}-{h}.parquet"


def _write_atomic(path: str, write) -> None:
    tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def run_task(model: str, text: str, ctx: int, out: str, layers: Optional[str],
             tokenizer: Optional[str], threads: Optional[int]) -> str:
    """One (model, text, ctx): analyze in a scratch directory, then write the part atomically."""
    part = os.path.join(out, part_name(model, text, ctx, layers))
    if os.path.exists(part):
        return part
    with tempfile.TemporaryDirectory(prefix="attnscope-sweep-") as tmp:
        a = attnscope.analyze(model, [text], [ctx], out=tmp, layers=layers, tokenizer=tokenizer, threads=threads)
        heads = a.heads.add_column(0, "model", pa.array([model] * a.heads.num_rows, pa.string()))
        reports = os.path.join(out, "_reports")
        os.makedirs(reports, exist_ok=True)
        report = os.path.join(reports, part_name(model, text, ctx, layers)[: -len(".parquet")] + ".json")
        _write_atomic(report, lambda p: open(p, "w").write(json.dumps(a.report)))
        _write_atomic(part, lambda p: pq.write_table(heads, p))
    return part


def _remove_leftovers(out: str) -> None:
    for d in (out, os.path.join(out, "_reports")):
        if os.path.isdir(d):
            for name in os.listdir(d):
                if ".tmp-" in name:
                    os.remove(os.path.join(d, name))


def sweep(models: Union[str, Sequence[str]], texts: Union[str, Sequence[str]], ctxs: Union[int, Iterable[int]],
          out: str, layers: Union[None, str, Iterable[int]] = None, *, tokenizer: Optional[str] = None,
          num_cpus: float = 1, address: Optional[str] = None) -> List[str]:
    """Run one Ray task per (model, text, ctx); return the paths of all parts.

    models: HF directories, .gguf / llama2.c files, or hub ids. texts: text
    files. out: the dataset directory (created). layers: ``"0-3,7"`` or ints.
    num_cpus: Ray CPUs per task (also the Rust thread count inside it).
    address: passed to ``ray.init`` when Ray is not initialised yet (default:
    ``RAY_ADDRESS``, else a local cluster).
    """
    import ray

    models = [models] if isinstance(models, str) else list(models)
    texts = [texts] if isinstance(texts, (str, os.PathLike)) else list(texts)
    ctxs = [ctxs] if isinstance(ctxs, int) else [int(c) for c in ctxs]
    if layers is not None and not isinstance(layers, str):
        layers = ",".join(str(int(x)) for x in layers)
    # local files as absolute paths, so that every worker finds them
    models = [os.path.abspath(m) if os.path.exists(m) else m for m in models]
    texts = [os.path.abspath(os.fspath(t)) for t in texts]
    for t in texts:
        if not os.path.isfile(t):
            raise attnscope.AttnscopeError(f"text {t} does not exist")
    out = os.path.abspath(out)
    os.makedirs(out, exist_ok=True)
    _remove_leftovers(out)
    if not ray.is_initialized():
        ray.init(address=address)
    task = ray.remote(run_task).options(num_cpus=num_cpus)
    threads = max(1, int(num_cpus))
    parts, pending = [], []
    for m in models:
        for t in texts:
            for c in ctxs:
                p = os.path.join(out, part_name(m, t, c, layers))
                parts.append(p)
                if not os.path.exists(p):
                    pending.append(task.remote(m, t, c, out, layers, tokenizer, threads))
    ray.get(pending)
    return parts
