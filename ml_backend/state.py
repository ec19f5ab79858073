"""Each project's state, and its atomic storage under the model directory.

Layout (``MODEL_DIR`` is Label Studio's convention for ML backends)::

    MODEL_DIR/project-<id>/
        CURRENT                  name of the version directory that serves (replaced atomically)
        v000003-<random>/        one directory per saved version, written whole before CURRENT moves
            state.json           scalars: iteration, model version, label config, curve, summary, warnings
            arrays.npz           per-task arrays, shape (n,)
            reward_model.pkl     the reward model's state_dict (optional)
        writeback.json           model versions whose write-back to Label Studio finished
        train.lock               held (flock) by the process that trains this project
        pool.jsonl, pool.lock    a large project's pool (:mod:`ml_backend.pool`)

A version is written to a temporary directory, fsynced, renamed, and only then does ``CURRENT`` point to it
(write-then-rename), so a crash at any moment leaves the previous version serving. Old versions beyond
``keep`` are pruned.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import secrets
import shutil
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator

import numpy as np

_ARRAYS = {
    "task_ids": np.int64,
    "ai_label": np.int8,
    "human_label": np.int8,
    "labels": np.int8,
    "label_source": np.int8,
    "region": np.int8,
    "reward_gap": np.float64,
    "oriented_gap": np.float64,
    "priority": np.float64,
    "score": np.float64,
    "queue_rank": np.int64,
    # Draw records (see ProjectState): absent from state files written before control draws.
    "drawn_by": np.int8,
    "draw_round": np.int64,
    "draw_frame": np.int64,
    "draw_score": np.float64,
    "label_round": np.int64,
    "answered_in": np.int8,
}
#: What a draw-record array holds for a pair without a record (and for every pair of an older state file).
_DRAW_RECORD_FILL = {
    "drawn_by": 0,
    "draw_round": -1,
    "draw_frame": 0,
    "draw_score": np.nan,
    "label_round": -1,
    "answered_in": 0,
}
DRAW_RECORDS = tuple(_DRAW_RECORD_FILL)


def blank_draw_records(n: int) -> dict[str, np.ndarray]:
    """Draw-record arrays of ``n`` pairs, none drawn or labelled (see :class:`ProjectState`). Shape (n,) each."""
    return {name: np.full(n, fill, dtype=_ARRAYS[name]) for name, fill in _DRAW_RECORD_FILL.items()}


def _empty(dtype: Any) -> np.ndarray:
    return np.zeros(0, dtype=dtype)


@dataclass
class ProjectState:
    """What the backend knows about one Label Studio project. Arrays have shape (n,), one entry per task.

    Attributes
    ----------
    project_id : int
    label_config : str
        The project's labeling config XML (the preference control is parsed from it).
    iteration : int
        Completed retrains; the model version is ``prefix + str(iteration)``.
    model_version : str
    task_ids : int64
        Label Studio task ids, the order of every other array.
    pair_ids : object (str)
        ``data.pair_id`` where given, else the task id.
    ai_label, human_label, labels : int8, +1 = A, -1 = B, 0 = unknown
        ``labels`` is the resolved current label (human > flipped > AI > RM).
    label_source : int8 :class:`~rlthf_selector.pairs.LabelSource`
    region : int8 :class:`~rlthf_selector.selection.Region`
    reward_gap, oriented_gap : float64
    priority : float64
        Rank in the human band (0 = ask first); ``inf`` outside it.
    score : float64
        The prediction score sent to Label Studio (lower = label first).
    queue_rank : int64
        Position in this step's capped human queue, -1 outside it.
    fingerprint : str
        Hash of the tasks and labels the last training saw (an unchanged fingerprint skips a retrain).
    drawn_by : int8
        How the pair was first drawn for a human: 0 = never, 1 = by the targeted queue, 2 = as a control draw
        (uniform over the unlabeled pairs); codes of :mod:`rlthf_selector.estimates`. A control draw takes over a
        queue record the humans left unanswered (so the control stays uniform); otherwise a pair keeps its first.
    draw_round : int64
        The iteration whose queue the draw was made for (-1 = not drawn).
    draw_frame : int64
        Unlabeled pairs with an AI label when the pair was drawn: the control draw's frame (0 = not drawn).
    draw_score : float64
        The reward model's mistake score at the draw: minus the reward gap in the AI label's orientation (NaN =
        not drawn).
    label_round : int64
        The iteration that was serving when the pair's human label arrived (-1 = no human label).
    answered_in : int8
        How the pair was being served when its human label arrived (0 = outside the queue, 1 = queue, 2 = control);
        an answer counts in the live estimates only under the draw that served it.
    """

    project_id: int
    label_config: str = ""
    iteration: int = 0
    model_version: str = ""
    trained_at: float = 0.0
    training_seconds: float = 0.0
    fingerprint: str = ""
    summary: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    versions: list = field(default_factory=list)
    task_ids: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    pair_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=object))
    ai_label: np.ndarray = field(default_factory=lambda: _empty(np.int8))
    human_label: np.ndarray = field(default_factory=lambda: _empty(np.int8))
    labels: np.ndarray = field(default_factory=lambda: _empty(np.int8))
    label_source: np.ndarray = field(default_factory=lambda: _empty(np.int8))
    region: np.ndarray = field(default_factory=lambda: _empty(np.int8))
    reward_gap: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    oriented_gap: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    priority: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    score: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    queue_rank: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    drawn_by: np.ndarray = field(default_factory=lambda: _empty(np.int8))
    draw_round: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    draw_frame: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    draw_score: np.ndarray = field(default_factory=lambda: _empty(np.float64))
    label_round: np.ndarray = field(default_factory=lambda: _empty(np.int64))
    answered_in: np.ndarray = field(default_factory=lambda: _empty(np.int8))
    reward_model_state: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._index: dict[int, int] = {int(t): i for i, t in enumerate(self.task_ids)}
        n = len(self.task_ids)
        for name, blank in blank_draw_records(n).items():
            # A state built without draw records (older files, a state made before any training) has none.
            if len(getattr(self, name)) == 0 and n:
                setattr(self, name, blank)

    @property
    def trained(self) -> bool:
        return self.iteration > 0 and len(self.task_ids) > 0

    def position(self, task_id: int) -> int | None:
        """Position of a task in the arrays, or None for a task this state has not seen."""
        return self._index.get(int(task_id))

    def arrays(self) -> dict[str, np.ndarray]:
        """Every per-task array (``pair_ids`` included), by field name."""
        return {**{name: getattr(self, name) for name in _ARRAYS}, "pair_ids": self.pair_ids}

    def scalars(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name not in _ARRAYS and f.name not in ("pair_ids", "reward_model_state")
        }


class StateStore:
    """Atomic, versioned storage of :class:`ProjectState` under ``root``.

    Parameters
    ----------
    root : path
        The model directory (created if missing).
    keep : int
        Versions kept per project.
    """

    def __init__(self, root: str | os.PathLike, *, keep: int = 5) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = max(1, int(keep))

    def project_dir(self, project_id: int) -> Path:
        return self.root / f"project-{int(project_id)}"

    def project_ids(self) -> list[int]:
        """Projects with a saved state."""
        out = []
        for p in self.root.glob("project-*"):
            if (p / "CURRENT").exists():
                with contextlib.suppress(ValueError):
                    out.append(int(p.name.split("-", 1)[1]))
        return sorted(out)

    def stamp(self, project_id: int) -> tuple[int, int] | None:
        """A cheap token that changes whenever a new version becomes current (or None without one)."""
        try:
            st = os.stat(self.project_dir(project_id) / "CURRENT")
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_ino)

    # ------------------------------------------------------------------ write
    def save(self, state: ProjectState) -> Path:
        """Write ``state`` as a new version and make it current (atomically)."""
        pdir = self.project_dir(state.project_id)
        pdir.mkdir(parents=True, exist_ok=True)
        name = f"v{state.iteration:06d}-{secrets.token_hex(4)}"
        tmp = pdir / f".tmp-{name}"
        tmp.mkdir()
        try:
            _write_json(tmp / "state.json", state.scalars())
            arrays = {k: np.asarray(getattr(state, k), dtype=dt) for k, dt in _ARRAYS.items()}
            arrays["pair_ids"] = np.asarray([str(p) for p in state.pair_ids], dtype=str)
            with open(tmp / "arrays.npz", "wb") as fh:
                np.savez(fh, **arrays)
                _fsync(fh)
            if state.reward_model_state is not None:
                with open(tmp / "reward_model.pkl", "wb") as fh:
                    pickle.dump(state.reward_model_state, fh, protocol=pickle.HIGHEST_PROTOCOL)
                    _fsync(fh)
            _fsync_dir(tmp)
            os.rename(tmp, pdir / name)
            _atomic_write_text(pdir / "CURRENT", name)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._prune(pdir, current=name)
        return pdir / name

    def _prune(self, pdir: Path, *, current: str) -> None:
        versions = sorted(p for p in pdir.glob("v*") if p.is_dir())
        for old in versions[: max(0, len(versions) - self.keep)]:
            if old.name != current:
                shutil.rmtree(old, ignore_errors=True)
        for stale in pdir.glob(".tmp-*"):  # left by a crash mid-save
            if time.time() - stale.stat().st_mtime > 3600:
                shutil.rmtree(stale, ignore_errors=True)

    # ------------------------------------------------------------------ read
    def load(self, project_id: int, *, with_reward_model: bool = True) -> ProjectState | None:
        """The current version, or None when the project has none."""
        pdir = self.project_dir(project_id)
        try:
            name = (pdir / "CURRENT").read_text().strip()
        except FileNotFoundError:
            return None
        vdir = pdir / name
        scalars = json.loads((vdir / "state.json").read_text(encoding="utf-8"))
        with np.load(vdir / "arrays.npz", allow_pickle=False) as npz:
            # Arrays a file from an older version lacks are left empty; ProjectState fills them in.
            arrays = {k: npz[k].astype(dt) for k, dt in _ARRAYS.items() if k in npz.files or k not in DRAW_RECORDS}
            pair_ids = npz["pair_ids"].astype(object)
        rm_state = None
        rm_path = vdir / "reward_model.pkl"
        if with_reward_model and rm_path.exists():
            with open(rm_path, "rb") as fh:
                rm_state = pickle.load(fh)  # our own file, written by save()
        known = {f.name for f in fields(ProjectState)}
        scalars = {k: v for k, v in scalars.items() if k in known}
        return ProjectState(**scalars, **arrays, pair_ids=pair_ids, reward_model_state=rm_state)

    # ------------------------------------------------------------------ write-back bookkeeping
    def writeback_done(self, project_id: int) -> set[str]:
        path = self.project_dir(project_id) / "writeback.json"
        try:
            return set(json.loads(path.read_text(encoding="utf-8")).get("done", []))
        except FileNotFoundError:
            return set()

    def mark_writeback_done(self, project_id: int, model_version: str) -> None:
        done = sorted(self.writeback_done(project_id) | {model_version})[-100:]
        pdir = self.project_dir(project_id)
        pdir.mkdir(parents=True, exist_ok=True)
        _atomic_write_text(pdir / "writeback.json", json.dumps({"done": done}))

    # ------------------------------------------------------------------ cross-process training lock
    @contextlib.contextmanager
    def training_lock(self, project_id: int) -> Iterator[bool]:
        """Hold the project's training file lock; yields False (at once) when another process holds it."""
        with file_lock(self.project_dir(project_id) / "train.lock", wait=False) as held:
            yield held


@contextlib.contextmanager
def file_lock(path: Path, *, wait: bool = True) -> Iterator[bool]:
    """Hold an exclusive flock on ``path`` (created with its folder), across processes; yields True. With ``wait``
    off, yields False at once when another process holds it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if not wait and exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                yield False
                return
            raise
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _fsync(fh: Any) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        _fsync(fh)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _write_json(path: Path, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, ensure_ascii=False, indent=1, default=_json_default)
        _fsync(fh)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")
