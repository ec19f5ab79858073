"""Where Ray runs and how a job is cut: the session, and Parquet shards written whole or not at all.

A shard file exists only when it is complete, so a killed job resumes from the shards already written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

from rlthf_selector.config import _f

logger = logging.getLogger(__name__)

#: ``--ray`` with no address: ``RAY_ADDRESS`` when set, else a Ray started on this machine.
LOCAL = "local"
_MANIFEST = "manifest.json"
_FATAL = "fatal.txt"  # a judge's JudgeFatalError message, left by the worker that met it


@dataclass
class RayConfig:
    """Prelabel, featurising and scoring as Ray Data jobs over Parquet shards (rlthf_selector.ray_jobs).

    Where Ray runs is the ``--ray [ADDRESS]`` option."""

    work_dir: str = _f(
        "",
        "Folder of the Parquet shards; a rerun resumes from the shards already there. On a cluster it must be "
        "storage every node sees. Empty = OUT.ray-work beside the output.",
    )
    shard_size: int = _f(5000, "Pairs per shard: the unit of work, and the most a killed job loses.")
    num_cpus: int = _f(0, "CPUs of a Ray started here; 0 = all of this machine's.")
    shard_concurrency: int = _f(0, "Most shards in flight at once; 0 = as many as Ray has CPUs for.")


def resolve_address(address: str | None) -> str | None:
    """The address ``ray.init`` gets: None = start a local Ray; otherwise a cluster address.

    ``"local"`` or empty means ``RAY_ADDRESS`` when it is set, else a local Ray.
    """
    if address in (None, "", LOCAL):
        return os.environ.get("RAY_ADDRESS") or None
    return address


@contextlib.contextmanager
def ray_session(address: str | None = LOCAL, *, num_cpus: int = 0) -> Iterator[None]:
    """Connect to Ray for the duration of the block; shut it down after only if this call started it.

    A Ray the caller already initialised (a test's ``ray.init(num_cpus=2)``, a notebook) is used as it is.
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("--ray needs Ray: pip install 'rlthf[ray]'") from exc
    if ray.is_initialized():
        yield
        return
    target = resolve_address(address)
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
    if target is None and num_cpus:
        kwargs["num_cpus"] = int(num_cpus)
    ray.init(address=target, **kwargs)
    try:
        yield
    finally:
        ray.shutdown()


def shard_name(index: int) -> str:
    return f"shard-{index:05d}.parquet"


def shard_bounds(n: int, shard_size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` of each shard of ``n`` pairs, in order."""
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    return [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def _write_table(table: Any, path: Path) -> None:
    """Write a Parquet file through a temporary name: the final name exists only for a complete file."""
    import pyarrow.parquet as pq

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def _temporary_files(out_dir: Path) -> list[Path]:
    return list(out_dir.glob(".shard-*.tmp-*"))


def _settle(out_dir: Path, *, timeout: float = 60.0) -> None:
    """Wait until no shard is being written under ``out_dir``: when one task fails, Ray's other tasks may still be
    mid-write, and a caller that resumes must not race them."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 3 and time.monotonic() < deadline:
        quiet = 0 if _temporary_files(out_dir) else quiet + 1
        time.sleep(0.2)


def _read_table(path: Path) -> Any:
    import pyarrow.parquet as pq

    return pq.read_table(path)


def _key(*parts: Any) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.tobytes() if isinstance(part, np.ndarray) else json.dumps(part, sort_keys=True, default=str).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def write_input_shards(rows: Sequence[Mapping[str, Any]] | Any, folder: str | Path, *, shard_size: int, kind: str) -> int:
    """Cut the input into Parquet shards under ``folder`` once; returns the number of shards.

    Parameters
    ----------
    rows : sequence of dict (``kind="records"``) or PreferencePairs (``kind="pairs"``), length n
    folder : path
    shard_size : int
    kind : "records" or "pairs"
        ``records``: id + each raw record as JSON (what prelabel's judges read); ``pairs``: the texts the
        featuriser reads.

    Raises
    ------
    ValueError
        When ``folder`` already holds shards of a different input or shard size (its ``manifest.json`` says
        which): a new input needs a new work folder.
    """
    import pyarrow as pa

    folder = Path(folder)
    if kind == "records":
        ids = [str(r["id"]) for r in rows]
        payload = [json.dumps(r, ensure_ascii=False, sort_keys=True) for r in rows]
        columns = {"record": payload}
    elif kind == "pairs":
        ids = [str(i) for i in rows.ids]
        columns = {"prompt": rows.prompt.tolist(), "response_a": rows.response_a.tolist(),
                   "response_b": rows.response_b.tolist()}
    else:
        raise ValueError(f"kind must be 'records' or 'pairs', got {kind!r}")
    n = len(ids)
    h = hashlib.sha256()
    for i in range(n):
        h.update(ids[i].encode())
        for values in columns.values():
            h.update(b"\0" + values[i].encode())
        h.update(b"\n")
    manifest = {"kind": kind, "n": n, "shard_size": int(shard_size), "fingerprint": h.hexdigest()}
    bounds = shard_bounds(n, shard_size)
    manifest_path = folder / _MANIFEST
    if manifest_path.exists():
        found = json.loads(manifest_path.read_text(encoding="utf-8"))
        if found != manifest:
            raise ValueError(
                f"work folder {folder.parent} holds shards of another input (its {kind} manifest says n={found.get('n')}, "
                f"shard_size={found.get('shard_size')}, fingerprint {str(found.get('fingerprint'))[:12]}; this input: "
                f"n={n}, shard_size={shard_size}, fingerprint {manifest['fingerprint'][:12]}): give a new work folder"
            )
        if all((folder / shard_name(i)).exists() for i in range(len(bounds))):
            return len(bounds)
    folder.mkdir(parents=True, exist_ok=True)
    manifest_path.write_text(json.dumps(manifest) + "\n", encoding="utf-8")
    for i, (start, stop) in enumerate(bounds):
        path = folder / shard_name(i)
        if not path.exists():
            table = pa.table({"id": ids[start:stop], **{k: v[start:stop] for k, v in columns.items()}})
            _write_table(table, path)
    return len(bounds)


@dataclass
class _ShardTask:
    """A picklable Ray Data map function: compute one shard with ``compute`` and write it under ``out_dir``."""

    compute: Callable[[int], Any]
    out_dir: str

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        index = int(row["shard"])
        started = time.perf_counter()
        table = self.compute(index)
        _write_table(table, Path(self.out_dir) / shard_name(index))
        return {"shard": index, "rows": table.num_rows, "seconds": time.perf_counter() - started}


def run_shards(
    compute: Callable[[int], Any],
    out_dir: str | Path,
    n_shards: int,
    *,
    use_ray: bool,
    concurrency: int = 0,
    redo: Callable[[Path], bool] | None = None,
) -> list[int]:
    """Compute every shard whose output file is missing; returns the indices computed, ascending.

    Parameters
    ----------
    compute : callable, shard index -> pyarrow.Table
        Picklable (it travels to Ray workers).
    out_dir : path
    n_shards : int
    use_ray : bool
        True: one Ray Data map task per shard (Ray must be initialised, see :func:`ray_session`);
        False: the shards one after another in this process.
    concurrency : int
        Most shards in flight; 0 = Ray's choice.
    redo : callable, path -> bool, optional
        Whether a written shard must be computed again (prelabel: pairs whose requests failed, retried as
        the single-process path retries them on a rerun).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in _temporary_files(out_dir):  # left by a worker killed mid-write; never a complete shard
        stale.unlink(missing_ok=True)
    todo = []
    for i in range(n_shards):
        path = out_dir / shard_name(i)
        if not path.exists() or (redo is not None and redo(path)):
            todo.append(i)
    if not todo:
        return []
    task = _ShardTask(compute, str(out_dir))
    if not use_ray:
        for i in todo:
            task({"shard": i})
        return todo
    import ray

    ray.data.DataContext.get_current().enable_progress_bars = logger.isEnabledFor(logging.DEBUG)
    ds = ray.data.from_items([{"shard": i} for i in todo], override_num_blocks=len(todo))
    map_kwargs: dict[str, Any] = {"num_cpus": 1}
    if concurrency:
        map_kwargs["concurrency"] = int(concurrency)
    try:
        done = sorted(int(r["shard"]) for r in ds.map(task, **map_kwargs).take_all())
    except Exception:
        _settle(out_dir)
        raise
    logger.info("%s: wrote %d shards", out_dir.name, len(done))
    return done


def _read_shards(out_dir: Path, n_shards: int) -> Any:
    import pyarrow as pa

    return pa.concat_tables([_read_table(out_dir / shard_name(i)) for i in range(n_shards)])


def _labels_table(ids: list[str], labels: Any, stats: Any) -> Any:
    """One judge's labels over one shard as a Parquet table, its run statistics in the schema metadata."""
    import pyarrow as pa

    out = pa.table({
        "id": ids,
        "label": labels.label.astype(np.int8),
        "confidence": labels.confidence.astype(np.float64),
        "consistent": labels.consistent.astype(np.int8),
        "reason": [None if r is None else str(r) for r in labels.reason],
    })
    return out.replace_schema_metadata({"stats": json.dumps(asdict(stats))})


def _has_failed_requests(path: Path) -> bool:
    from rlthf_selector.judge.merge import reason_category

    reasons = _read_table(path).column("reason").to_pylist()
    return any(r is not None and reason_category(r) == "request_failed" for r in reasons)
