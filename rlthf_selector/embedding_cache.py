"""An on-disk cache of text embeddings, so a text is encoded once across iterations and restarts.

Layout: ``directory/<model key>/`` holds shards written by :meth:`EmbeddingCache.put_many`. A shard is two
files, ``<stem>.vectors.npy`` (float32, shape (k, d)) and ``<stem>.keys.npy`` (uint8, shape (k, 32): the
sha256 of model id and text). Each file is written under a temporary name and renamed into place, vectors
first; the keys file is the commit marker, so a shard interrupted mid-write is never read. A shard that fails
to load or disagrees with the others is skipped with a warning, never trusted.

Several processes may share a directory: shards are immutable and uniquely named, and a lookup that misses
rescans the directory for shards written since.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

_KEYS_SUFFIX = ".keys.npy"
_VECTORS_SUFFIX = ".vectors.npy"


def text_key(model_id: str, text: str) -> bytes:
    """The cache key of ``text`` under ``model_id``: sha256 over both (32 bytes)."""
    h = hashlib.sha256(model_id.encode("utf-8"))
    h.update(b"\x00")
    h.update(text.encode("utf-8", errors="surrogatepass"))
    return h.digest()


def _save_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def new_shards(path: Path, seen: set[str]) -> Iterator[tuple[str, Path]]:
    """``(stem, keys file)`` of each committed shard under ``path`` not yet in ``seen`` (its keys file, written last,
    is the commit marker), each added to ``seen``. Shared by this cache and the feature store."""
    for keys_file in sorted(path.glob("*" + _KEYS_SUFFIX)):
        name = keys_file.name
        if name in seen or name.startswith(".tmp-"):
            continue
        seen.add(name)
        yield name[: -len(_KEYS_SUFFIX)], keys_file


def load_keys(keys_file: Path) -> np.ndarray:
    """A shard's keys, shape (k, 32) uint8; ValueError naming the shape otherwise."""
    keys = np.load(keys_file, allow_pickle=False)
    if keys.ndim != 2 or keys.shape[1] != 32 or keys.dtype != np.uint8:
        raise ValueError(f"keys have shape {keys.shape} and dtype {keys.dtype}, expected (k, 32) uint8")
    return keys


class EmbeddingCache:
    """Text -> vector cache for one encoder, in memory and (optionally) on disk.

    Parameters
    ----------
    directory : str or Path or None
        Root cache directory (created if missing). None keeps the cache in memory only.
    model_id : str
        Identifies the encoder; part of every key, so two encoders never share vectors.

    Attributes
    ----------
    dim : int or None
        Vector width, known once a vector has been stored or loaded.
    """

    def __init__(self, directory: str | Path | None, model_id: str) -> None:
        if not model_id:
            raise ValueError("model_id must be a non-empty string")
        self.model_id = model_id
        self.dim: int | None = None
        self._memory: dict[bytes, np.ndarray] = {}
        # key -> (shard stem, row); vectors are memory-mapped per shard
        self._disk_index: dict[bytes, tuple[str, int]] = {}
        self._shards: dict[str, np.ndarray] = {}
        self._seen_files: set[str] = set()
        if directory is None:
            self.path: Path | None = None
        else:
            model_key = hashlib.sha256(model_id.encode("utf-8")).hexdigest()[:16]
            self.path = Path(directory).expanduser() / model_key
            self.path.mkdir(parents=True, exist_ok=True)
            marker = self.path / "model_id.txt"
            if not marker.exists():
                marker.write_text(model_id + "\n", encoding="utf-8")
            self._scan()

    def __len__(self) -> int:
        return len(set(self._memory) | set(self._disk_index))

    def __repr__(self) -> str:
        return f"EmbeddingCache(path={str(self.path)!r}, model_id={self.model_id!r}, entries={len(self)})"

    # -- disk -----------------------------------------------------------------------------------
    def _scan(self) -> None:
        """Index the shards that appeared on disk since the last scan."""
        if self.path is None:
            return
        for stem, keys_file in new_shards(self.path, self._seen_files):
            try:
                keys = load_keys(keys_file)
                vectors = np.load(self.path / (stem + _VECTORS_SUFFIX), mmap_mode="r", allow_pickle=False)
                if vectors.ndim != 2 or vectors.shape[0] != keys.shape[0]:
                    raise ValueError(f"vectors have shape {vectors.shape} for {keys.shape[0]} keys")
                if self.dim is not None and vectors.shape[1] != self.dim:
                    raise ValueError(f"vectors have width {vectors.shape[1]}, the cache holds width {self.dim}")
            except Exception as exc:  # noqa: BLE001 - any unreadable shard is skipped, loudly
                warnings.warn(f"embedding cache: ignoring unreadable shard {keys_file}: {exc}", RuntimeWarning, stacklevel=3)
                continue
            self.dim = int(vectors.shape[1])
            self._shards[stem] = vectors
            for row, key in enumerate(keys):
                self._disk_index.setdefault(key.tobytes(), (stem, row))

    def _write_shard(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        assert self.path is not None
        stem = f"shard-{uuid.uuid4().hex}"
        _save_atomic(self.path / (stem + _VECTORS_SUFFIX), vectors)
        _save_atomic(self.path / (stem + _KEYS_SUFFIX), keys)  # written last: the shard's commit marker
        self._seen_files.add(stem + _KEYS_SUFFIX)
        self._shards[stem] = vectors
        for row, key in enumerate(keys):
            self._disk_index.setdefault(key.tobytes(), (stem, row))

    # -- public ---------------------------------------------------------------------------------
    def keys(self, texts: Iterable[str]) -> list[bytes]:
        """Cache keys of ``texts`` under this cache's model id."""
        return [text_key(self.model_id, t) for t in texts]

    def get_many(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Look up ``texts``.

        Returns
        -------
        found : ndarray of bool, shape (m,)
        vectors : ndarray of float32, shape (m, d)
            Rows of texts not found are zero. ``d`` is 0 while the cache is empty.
        """
        keys = self.keys(texts)
        if self.path is not None and any(k not in self._memory and k not in self._disk_index for k in keys):
            self._scan()
        found = np.zeros(len(keys), dtype=bool)
        out = np.zeros((len(keys), self.dim or 0), dtype=np.float32)
        for i, key in enumerate(keys):
            vec = self._memory.get(key)
            if vec is None:
                where = self._disk_index.get(key)
                if where is None:
                    continue
                stem, row = where
                vec = np.array(self._shards[stem][row], dtype=np.float32)
                self._memory[key] = vec
            out[i] = vec
            found[i] = True
        return found, out

    def put_many(self, texts: Sequence[str], vectors: np.ndarray) -> None:
        """Store ``vectors`` (shape (m, d)) for ``texts`` (m strings) in memory and as one new shard on disk.

        Texts already cached are not written again.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ValueError(f"vectors must have shape ({len(texts)}, d), got {vectors.shape}")
        if self.dim is not None and vectors.shape[1] != self.dim:
            raise ValueError(f"vectors have width {vectors.shape[1]}, this cache holds width {self.dim}")
        if not np.isfinite(vectors).all():
            raise ValueError("refusing to cache non-finite embedding values")
        self.dim = int(vectors.shape[1])
        new_keys, new_rows = [], []
        pending: set[bytes] = set()
        for i, key in enumerate(self.keys(texts)):
            if key not in self._disk_index and key not in pending:
                new_keys.append(key)
                new_rows.append(i)
                pending.add(key)
            self._memory[key] = vectors[i].copy()
        if self.path is not None and new_keys:
            key_array = np.frombuffer(b"".join(new_keys), dtype=np.uint8).reshape(len(new_keys), 32)
            self._write_shard(key_array, np.ascontiguousarray(vectors[new_rows]))

    def clear_memory(self) -> None:
        """Drop the in-memory layer (the disk shards stay)."""
        self._memory.clear()
