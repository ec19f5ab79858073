"""Per-side feature rows of preference pairs, held once: in memory, or on disk and memory-mapped.

A pair's rows (shape (2, d): ``[0]`` for (prompt, A), ``[1]`` for (prompt, B)) are keyed like the embedding
cache keys texts (:func:`~rlthf_selector.embedding_cache.text_key`: sha256 over the featuriser's name and the
pair's id and texts), so a pair whose texts change under the same id is featurised again, and a store on disk
serves every process and restart that uses the same featuriser.

On disk (``directory`` given) each :meth:`FeatureStore.put` writes one segment, two ``.npy`` files written
atomically, rows first; the keys file is the commit marker, so an interrupted write is never read. Segments are
memory-mapped and read in chunks; after each read the mapping's pages are released again, so the resident memory
of a pass over a million pairs is one chunk, not the file. Rows are stored as float32 (exact) or float16 (half
the disk and page cache; rounds each feature to 11 significant bits).

:class:`FeatureRows` is a lazy view of some of a store's rows (or of an in-memory array): taking folds or
subsets of it copies positions, never features.
"""

from __future__ import annotations

import hashlib
import mmap
import uuid
import warnings
from pathlib import Path
from typing import Iterator

import numpy as np

from rlthf_selector.config import FeaturizerConfig
from rlthf_selector.embedding_cache import _KEYS_SUFFIX, _save_atomic, load_keys, new_shards, text_key

_ROWS_SUFFIX = ".rows.npy"
#: Pairs read or featurised at a time.
CHUNK_PAIRS = 65_536
STORE_DTYPES = ("float32", "float16")


def pair_key(featurizer_name: str, pair_id: str, prompt: str, response_a: str, response_b: str) -> bytes:
    """The store key of one pair: sha256 over the featuriser name, the id and the three texts (32 bytes).

    Each part is length-prefixed, so no two different pairs share a key by concatenation.
    """
    parts = (str(pair_id), str(prompt), str(response_a), str(response_b))
    return text_key(featurizer_name, "".join(f"{len(p)}:{p}" for p in parts))


def _open_mapped(path: Path) -> tuple[np.ndarray, mmap.mmap]:
    """A read-only, memory-mapped view of a ``.npy`` file and the mapping that backs it."""
    with open(path, "rb") as fh:
        version = np.lib.format.read_magic(fh)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(fh)
        offset = fh.tell()
        if fortran:
            raise ValueError(f"{path}: Fortran-ordered arrays are not supported")
        mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    count = int(np.prod(shape))
    array = np.frombuffer(mapped, dtype=dtype, count=count, offset=offset).reshape(shape)
    return array, mapped


def _release(mapped: mmap.mmap | None) -> None:
    """Drop the mapping's resident pages (the file and the page cache keep them; a later read maps them again)."""
    if mapped is not None and hasattr(mapped, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        mapped.madvise(mmap.MADV_DONTNEED)


class FeatureStore:
    """Feature rows of pairs for one featuriser, each pair stored once.

    Parameters
    ----------
    directory : str or Path or None
        Root directory (created if missing); the store lives in a sub-directory per featuriser name. None keeps
        the rows in memory.
    featurizer_name : str
        Part of every key, so two featurisers never share rows.
    dtype : {'float32', 'float16'}
        Storage type of the rows. Reads always return float32.

    Attributes
    ----------
    dim : int or None
        Width ``d`` of one side's row, known once rows are stored.
    """

    def __init__(self, directory: str | Path | None, featurizer_name: str, *, dtype: str = "float32") -> None:
        if not featurizer_name:
            raise ValueError("featurizer_name must be a non-empty string")
        if dtype not in STORE_DTYPES:
            raise ValueError(f"feature store dtype must be one of {STORE_DTYPES}, got {dtype!r}")
        self.featurizer_name = featurizer_name
        self.dtype = np.dtype(dtype)
        self.dim: int | None = None
        self._index: dict[bytes, int] = {}  # key -> global row
        self._segments: list[np.ndarray] = []  # each (k, 2, d)
        self._mappings: list[mmap.mmap | None] = []
        self._starts: list[int] = [0]  # global row of each segment's first row, then the total
        self._seen_files: set[str] = set()
        if directory is None:
            self.path: Path | None = None
        else:
            sub = hashlib.sha256(f"{featurizer_name}\x00{dtype}".encode("utf-8")).hexdigest()[:16]
            self.path = Path(directory).expanduser() / sub
            self.path.mkdir(parents=True, exist_ok=True)
            marker = self.path / "featurizer.txt"
            if not marker.exists():
                marker.write_text(f"{featurizer_name}\n{dtype}\n", encoding="utf-8")
            self._scan()

    def __len__(self) -> int:
        return len(self._index)

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        return f"FeatureStore({where!r}, featurizer={self.featurizer_name!r}, dtype={self.dtype.name}, pairs={len(self)})"

    # -- segments -------------------------------------------------------------------------------
    def _add_segment(self, keys: np.ndarray, rows: np.ndarray, mapped: mmap.mmap | None) -> np.ndarray:
        start = self._starts[-1]
        self._segments.append(rows)
        self._mappings.append(mapped)
        self._starts.append(start + rows.shape[0])
        positions = np.empty(keys.shape[0], dtype=np.int64)
        for i, key in enumerate(keys):
            positions[i] = self._index.setdefault(key.tobytes(), start + i)
        return positions

    def _scan(self) -> None:
        """Map the segments that appeared on disk since the last scan (other processes may write them)."""
        if self.path is None:
            return
        for stem, keys_file in new_shards(self.path, self._seen_files):
            try:
                keys = load_keys(keys_file)
                rows, mapped = _open_mapped(self.path / (stem + _ROWS_SUFFIX))
                if rows.ndim != 3 or rows.shape[:2] != (keys.shape[0], 2) or rows.dtype != self.dtype:
                    raise ValueError(f"rows have shape {rows.shape} and dtype {rows.dtype} for {keys.shape[0]} keys")
                if self.dim is not None and rows.shape[2] != self.dim:
                    raise ValueError(f"rows have width {rows.shape[2]}, the store holds width {self.dim}")
            except Exception as exc:  # noqa: BLE001 - any unreadable segment is skipped, loudly
                warnings.warn(f"feature store: ignoring unreadable segment {keys_file}: {exc}", RuntimeWarning, stacklevel=3)
                continue
            self.dim = int(rows.shape[2])
            self._add_segment(keys, rows, mapped)
            _release(mapped)

    # -- public ---------------------------------------------------------------------------------
    def keys(self, pairs) -> np.ndarray:
        """Store keys of ``pairs`` (a PreferencePairs of n pairs), shape (n, 32) uint8."""
        name = self.featurizer_name
        joined = b"".join(
            pair_key(name, i, p, a, b) for i, p, a, b in zip(pairs.ids, pairs.prompt, pairs.response_a, pairs.response_b)
        )
        return np.frombuffer(joined, dtype=np.uint8).reshape(len(pairs), 32)

    def locate(self, keys: np.ndarray) -> np.ndarray:
        """Global row of each key, -1 where the store lacks it. Shape (n,) int64."""
        if self.path is not None and any(k.tobytes() not in self._index for k in keys):
            self._scan()
        index = self._index
        return np.fromiter((index.get(k.tobytes(), -1) for k in keys), dtype=np.int64, count=keys.shape[0])

    def put(self, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Store ``rows`` (shape (k, 2, d)) under ``keys`` (shape (k, 32) uint8) as one segment.

        Returns
        -------
        ndarray of int64, shape (k,)
            The global row of each key (an earlier row where the key was already stored).

        Raises
        ------
        ValueError
            Wrong shapes, a width other than the store's, or values that are not finite in the store's dtype.
        """
        rows = np.asarray(rows)
        if rows.ndim != 3 or rows.shape[:2] != (keys.shape[0], 2):
            raise ValueError(f"feature rows must have shape ({keys.shape[0]}, 2, d), got {rows.shape}")
        if self.dim is not None and rows.shape[2] != self.dim:
            raise ValueError(f"feature rows have width {rows.shape[2]}, this store holds width {self.dim}")
        with np.errstate(over="ignore"):  # an overflow to inf is reported just below, by name
            stored = np.ascontiguousarray(rows, dtype=self.dtype)
        if not np.isfinite(stored).all():
            big = "" if self.dtype != np.float16 else " (float16 holds magnitudes up to 65504)"
            raise ValueError(f"refusing to store non-finite feature values{big}")
        self.dim = int(rows.shape[2])
        if self.path is None:
            return self._add_segment(keys, stored, None)
        stem = f"segment-{uuid.uuid4().hex}"
        _save_atomic(self.path / (stem + _ROWS_SUFFIX), stored)
        _save_atomic(self.path / (stem + _KEYS_SUFFIX), np.ascontiguousarray(keys))  # the commit marker
        self._seen_files.add(stem + _KEYS_SUFFIX)
        del stored
        mapped_rows, mapped = _open_mapped(self.path / (stem + _ROWS_SUFFIX))
        return self._add_segment(keys, mapped_rows, mapped)

    def read(self, positions: np.ndarray) -> np.ndarray:
        """The rows at global ``positions`` (shape (m,)), as float32 of shape (m, 2, d)."""
        positions = np.asarray(positions, dtype=np.int64)
        out = np.empty((positions.shape[0], 2, self.dim or 0), dtype=np.float32)
        if positions.shape[0] == 0:
            return out
        starts = np.asarray(self._starts)
        segment = np.searchsorted(starts, positions, side="right") - 1
        if segment.min() < 0 or positions.max() >= starts[-1]:
            raise IndexError(f"feature store positions out of range [0, {starts[-1]})")
        first, last = int(segment.min()), int(segment.max())
        if first == last:  # the common case (a chunk of sorted positions): no masks
            out[:] = self._segments[first][positions - starts[first]]
            _release(self._mappings[first])
            return out
        for s in np.unique(segment):
            at = segment == s
            out[at] = self._segments[s][positions[at] - starts[s]]
            _release(self._mappings[s])
        return out


def store_for(featurizer, config: FeaturizerConfig) -> FeatureStore:
    """The store ``config`` names (``store_dir``, ``store_dtype``) for ``featurizer``'s rows."""
    return FeatureStore(config.store_dir or None, featurizer.name, dtype=config.store_dtype)


class FeatureRows:
    """A lazy ``(m, 2, d)`` view of feature rows: of a :class:`FeatureStore` at given positions, or of an array.

    :meth:`take` narrows the view (copying positions only); :meth:`chunks` and :meth:`gather` read float32 rows.

    Parameters
    ----------
    source : FeatureStore or ndarray of shape (n, 2, d)
    positions : ndarray of int64, shape (m,), optional
        Rows of ``source`` in view order; None = all of an array's rows in order.
    """

    def __init__(self, source: FeatureStore | np.ndarray, positions: np.ndarray | None = None) -> None:
        if isinstance(source, FeatureStore):
            if positions is None:
                positions = np.arange(len(source), dtype=np.int64)
            dim = source.dim or 0
        else:
            source = np.asarray(source)
            if source.ndim != 3 or source.shape[1] != 2:
                raise ValueError(f"features must have shape (n, 2, d), got {source.shape}")
            dim = source.shape[2]
        self.source = source
        self.positions = None if positions is None else np.asarray(positions, dtype=np.int64)
        m = source.shape[0] if self.positions is None else self.positions.shape[0]
        self.shape = (int(m), 2, int(dim))

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"FeatureRows(shape={self.shape}, source={type(self.source).__name__})"

    def take(self, index: np.ndarray) -> "FeatureRows":
        """The rows at ``index`` (positions into this view, shape (k,)) as a new view; no features are copied."""
        index = np.asarray(index, dtype=np.int64)
        return FeatureRows(self.source, index if self.positions is None else self.positions[index])

    def gather(self, index: np.ndarray | slice | None = None) -> np.ndarray:
        """The rows at ``index`` (default: all), float32 of shape (k, 2, d)."""
        where = slice(None) if index is None else index
        if self.positions is None:
            return np.asarray(self.source[where], dtype=np.float32)
        if isinstance(self.source, FeatureStore):
            return self.source.read(self.positions[where])
        return np.asarray(self.source[self.positions[where]], dtype=np.float32)

    def chunks(self, size: int | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
        """``(start, stop, rows)`` over the view in order; ``rows`` is float32 of shape (stop - start, 2, d).
        ``size``: pairs per chunk, default :data:`CHUNK_PAIRS`."""
        size = size or CHUNK_PAIRS
        for start in range(0, self.shape[0], size):
            stop = min(start + size, self.shape[0])
            yield start, stop, self.gather(slice(start, stop))


__all__ = ["CHUNK_PAIRS", "FeatureRows", "FeatureStore", "STORE_DTYPES", "pair_key", "store_for"]
