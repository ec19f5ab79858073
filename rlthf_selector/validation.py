"""Input checks shared by the loaders, the simulated judges and the rest of the library.

Every check raises ``ValueError`` (or its subclass :class:`PairValidationError`) with a message that
names what was wrong and where, so a bad row in a 100k-line file can be found and fixed.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class PairValidationError(ValueError):
    """A bad record in a preference-data source.

    Parameters
    ----------
    message : str
        What is wrong, e.g. ``"field 'prompt' is missing"``.
    source : str, optional
        The file (or other source) the record came from.
    line : int, optional
        1-based line number in ``source`` (JSONL files).
    row : int, optional
        0-based record index (sources without lines: JSON arrays, record lists, datasets).
    reason : str
        A short, stable key for the kind of problem (``"missing field"``, ``"invalid JSON"``...),
        used to count skipped records by reason.
    """

    def __init__(
        self,
        message: str,
        *,
        source: str | None = None,
        line: int | None = None,
        row: int | None = None,
        reason: str = "invalid record",
    ) -> None:
        self.message = message
        self.source = source
        self.line = line
        self.row = row
        self.reason = reason
        super().__init__(f"{self.where}: {message}" if self.where else message)

    @property
    def where(self) -> str:
        """``"file:line"``, ``"file row i"`` or ``""``."""
        where = self.source or ""
        if self.line is not None:
            where += f":{self.line}" if where else f"line {self.line}"
        elif self.row is not None:
            where += f" row {self.row}" if where else f"row {self.row}"
        return where


def check_text(value: Any, *, where: str) -> str:
    """Return ``value`` if it is a ``str``; otherwise raise ``ValueError`` naming ``where`` and the type."""
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string, got {type(value).__name__} {_short_repr(value)}")
    return value


def check_label_vector(x: Any, n: int, name: str, *, allow_unknown: bool = True) -> np.ndarray:
    """Validate a label vector and return it as int8.

    Parameters
    ----------
    x : array-like, shape (n,)
        Labels: +1 (A preferred), -1 (B preferred), 0 (unknown).
    n : int
        Expected length.
    name : str
        Used in error messages.
    allow_unknown : bool
        If False, a 0 anywhere is an error (e.g. gold labels a simulated judge must start from).

    Returns
    -------
    ndarray of int8, shape (n,)
    """
    arr = np.asarray(x)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must hold integers +1/-1/0, got dtype {arr.dtype}")
    allowed = (-1, 0, 1) if allow_unknown else (-1, 1)
    bad = ~np.isin(arr, allowed)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        what = "+1 (A), -1 (B) or 0 (unknown)" if allow_unknown else "+1 (A) or -1 (B); 0 (unknown) is not allowed here"
        value = arr[i].item() if isinstance(arr[i], np.generic) else arr[i]
        raise ValueError(f"{name}[{i}] = {value!r}: {int(bad.sum())} label(s) not {what}")
    return arr.astype(np.int8)


def check_number_vector(x: Any, n: int, name: str, dtype: Any) -> np.ndarray:
    """``x`` as a vector of ``n`` numbers of ``dtype`` (``np.int64`` also refuses non-whole floats).

    Raises
    ------
    ValueError
        Naming ``name``: a wrong shape, booleans or non-numbers, or (for integers) a value that is not whole.
    """
    arr = np.asarray(x)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one entry per pair, got {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
    if dtype is np.int64 and np.issubdtype(arr.dtype, np.floating):
        raise_if_any(~np.isfinite(arr) | (arr != np.round(arr)), f"{name} must hold whole numbers")
    return arr.astype(dtype)


def check_bool_vector(x: Any, n: int, name: str) -> np.ndarray:
    """``x`` as a vector of ``n`` booleans.

    Raises
    ------
    ValueError
        Naming ``name``: a wrong shape, or entries that are not booleans (0 and 1 are accepted).
    """
    arr = np.asarray(x)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), one entry per pair, got {arr.shape}")
    if arr.dtype != bool:
        if not np.issubdtype(arr.dtype, np.number) or not np.isin(arr, (0, 1)).all():
            raise ValueError(f"{name} must hold booleans, got dtype {arr.dtype}")
    return arr.astype(bool)


def raise_if_any(bad: np.ndarray, what: str) -> None:
    """Raise ``ValueError(what: count, the first position)`` when any entry of the bool vector ``bad`` is set."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{what}: {int(bad.sum())} pair(s), the first at position {i}")


def check_probability(value: Any, name: str) -> float:
    """Return ``value`` as a float in [0, 1]; raise ``ValueError`` naming ``name`` otherwise."""
    try:
        p = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {_short_repr(value)}") from None
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {p}")
    return p


def check_choice(value: Any, choices: tuple, name: str) -> Any:
    """Return ``value`` if it is one of ``choices``; raise ``ValueError`` listing them otherwise."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}")
    return value


def _short_repr(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_finite_vector(values, *, name: str) -> np.ndarray:
    """``values`` as a float64 vector, shape (n,); ValueError naming ``name`` and the first bad entry."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-d array, got shape {arr.shape}")
    bad = ~np.isfinite(arr)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] = {arr[i]}: reward gaps must be finite")
    return arr
