"""The pool of a large project: every pair, kept in the backend's store; Label Studio holds only the human batches.

Above ``BackendConfig.pool_threshold`` pairs, ``rlthf label-studio setup`` sends the pairs here (``POST /pool/<id>``)
instead of importing them into Label Studio. Each retrain trains on the pool plus Label Studio's tasks and imports the
pairs of the served batch that Label Studio does not hold yet (:func:`batch_to_import`); ``rlthf export`` reads the
pool back (``GET /pool/<id>/pairs``) and merges it with Label Studio's human answers.

Layout, beside the project's state (:class:`~ml_backend.state.StateStore`)::

    MODEL_DIR/project-<id>/
        pool.jsonl      one task data dict per line (prompt, responses, pair_id, AI label, evidence), append-only
        pool.lock       held (flock) while a chunk is appended

A pool pair that Label Studio does not hold takes the stand-in task id ``-(line + 1)``: the pool only grows, so the
id stays the pair's until the pair is imported and gets Label Studio's id.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from label_config import task_data_problems

from ml_backend.state import file_lock

POOL_FILE = "pool.jsonl"


def pool_path(project_dir: str | os.PathLike) -> Path:
    return Path(project_dir) / POOL_FILE


def has_pool(project_dir: str | os.PathLike) -> bool:
    return pool_path(project_dir).exists()


def check_pool_records(records: Any) -> list[dict[str, Any]]:
    """The task data dicts of one upload, checked.

    Raises
    ------
    ValueError
        Naming the first record that is not a task data dict with ``prompt``, ``response_a``, ``response_b`` and a
        ``pair_id`` (the pool is keyed by it), or a pair id given twice in the upload.
    """
    if not isinstance(records, list):
        raise ValueError(f"'pairs' must be a list of task data objects, got {type(records).__name__}")
    seen: set[str] = set()
    for i, data in enumerate(records):
        problems = task_data_problems(data)
        if not problems and data.get("pair_id") is None:
            problems = ["data.pair_id is missing (the pool is keyed by it)"]
        if problems:
            raise ValueError(f"pairs[{i}]: {'; '.join(problems)}")
        key = str(data["pair_id"])
        if key in seen:
            raise ValueError(f"pairs[{i}]: pair_id {key!r} given twice")
        seen.add(key)
    return [dict(d, pair_id=str(d["pair_id"])) for d in records]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size)


def add_to_pool(project_dir: str | os.PathLike, records: Sequence[Mapping[str, Any]], *,
                known_ids: dict[str, tuple[Any, set[str]]] | None = None) -> dict[str, int]:
    """Append the records whose ``pair_id`` the pool does not hold yet (an upload can be repeated or resumed).

    Parameters
    ----------
    known_ids : dict, optional
        The caller's cache of each pool's pair ids, by file, with the file's (mtime, size) when they were read: an
        upload in many chunks then reads the pool once, not once a chunk. Another process's append changes the
        stamp, and the ids are read again.

    Returns
    -------
    dict
        ``added``, ``already_there`` and ``pairs`` (the pool's size now).
    """
    pdir = Path(project_dir)
    path = pool_path(pdir)
    with file_lock(pdir / "pool.lock"):
        cached = (known_ids or {}).get(str(path))
        known = cached[1] if cached is not None and cached[0] == _stamp(path) else set(pool_pair_ids(pdir))
        new = [r for r in records if str(r["pair_id"]) not in known]
        if new:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new))
                fh.flush()
                os.fsync(fh.fileno())
            known.update(str(r["pair_id"]) for r in new)
        if known_ids is not None:
            known_ids[str(path)] = (_stamp(path), known)
        return {"added": len(new), "already_there": len(records) - len(new), "pairs": len(known)}


def read_pool(project_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """Every pool record (task data dicts), in the order they were added; empty without a pool."""
    try:
        with open(pool_path(project_dir), encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]
    except FileNotFoundError:
        return []


def pool_pair_ids(project_dir: str | os.PathLike) -> list[str]:
    return [str(r["pair_id"]) for r in read_pool(project_dir)]


def stand_in_tasks(pool: Sequence[Mapping[str, Any]], tasks: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tasks for the pool pairs Label Studio does not hold (by ``pair_id``), with stand-in ids ``-(line + 1)``.

    Parameters
    ----------
    pool : list of dict, length n_pool
        :func:`read_pool`.
    tasks : list of dict
        Label Studio's tasks of the project.

    Returns
    -------
    list of dict
        ``{"id": -(line + 1), "data": record, "annotations": []}`` for each pool pair not in ``tasks``.
    """
    held = {str((t.get("data") or {}).get("pair_id")) for t in tasks}
    return [{"id": -(i + 1), "data": r, "annotations": []} for i, r in enumerate(pool)
            if str(r.get("pair_id")) not in held]


def batch_to_import(task_ids: np.ndarray, queue_rank: np.ndarray) -> np.ndarray:
    """Positions of the served batch (queue and control draws) that Label Studio does not hold yet (stand-in ids),
    in queue order. Shape (k,) int64."""
    served = np.flatnonzero((np.asarray(queue_rank) >= 0) & (np.asarray(task_ids) < 0))
    return served[np.argsort(np.asarray(queue_rank)[served], kind="stable")].astype(np.int64)
