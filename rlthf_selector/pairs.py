"""The columnar in-memory representation of N preference pairs.

Labels are int8 vectors of shape ``(n,)`` with one convention everywhere:
``+1`` = response A preferred, ``-1`` = response B preferred, ``0`` = unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

A_PREFERRED = 1
B_PREFERRED = -1
UNKNOWN = 0

#: Optional ``pairs.extra`` columns holding the conversation each text was rendered from (TRL's conversational
#: format: lists of ``{"role", "content"}`` messages; None on pairs given as plain text). The selector reads only the
#: rendered strings; the export gives the conversations back, so chat-templated training data stays chat-templated.
MESSAGE_FIELDS = ("prompt_messages", "response_a_messages", "response_b_messages")


class LabelSource(IntEnum):
    """Where a pair's current label came from. Stored as int8 in ``label_source`` arrays."""

    NONE = 0
    AI = 1
    FLIPPED = 2
    HUMAN = 3
    RM = 4

    @property
    def label(self) -> str:
        return self.name.lower()


def _as_label_vector(values: Any, n: int, name: str) -> np.ndarray:
    if values is None:
        return np.zeros(n, dtype=np.int8)
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
    bad = ~np.isin(arr, (-1, 0, 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{i}] = {arr[i]!r}: labels must be +1 (A), -1 (B) or 0 (unknown)")
    return arr.astype(np.int8)


def _as_text_vector(values: Sequence[str], n: int | None, name: str) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    if n is not None and arr.shape != (n,):
        raise ValueError(f"{name} must have {n} entries, got {arr.shape[0]}")
    return arr


@dataclass
class PreferencePairs:
    """N preference pairs as parallel arrays.

    Attributes
    ----------
    ids : ndarray of str, shape (n,)
        Unique pair ids.
    prompt, response_a, response_b : ndarray of str, shape (n,)
    ai_label, human_label, gold_label : ndarray of int8, shape (n,)
        +1 = A preferred, -1 = B preferred, 0 = unknown. ``gold_label`` is only known in
        simulations and evaluation; it is never read by the selector.
    extra : dict of str to ndarray of shape (n,)
        Optional per-pair evidence (e.g. ``ai_confidence``, ``ai_consistent``,
        ``second_judge_label``), and the conversations of :data:`MESSAGE_FIELDS` where the pairs came as
        conversations. Subsetting keeps it aligned.
    """

    ids: np.ndarray
    prompt: np.ndarray
    response_a: np.ndarray
    response_b: np.ndarray
    ai_label: np.ndarray = None  # type: ignore[assignment]
    human_label: np.ndarray = None  # type: ignore[assignment]
    gold_label: np.ndarray = None  # type: ignore[assignment]
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.ids = _as_text_vector([str(i) for i in self.ids], None, "ids")
        n = self.ids.shape[0]
        self.prompt = _as_text_vector(self.prompt, n, "prompt")
        self.response_a = _as_text_vector(self.response_a, n, "response_a")
        self.response_b = _as_text_vector(self.response_b, n, "response_b")
        self.ai_label = _as_label_vector(self.ai_label, n, "ai_label")
        self.human_label = _as_label_vector(self.human_label, n, "human_label")
        self.gold_label = _as_label_vector(self.gold_label, n, "gold_label")
        if len(set(self.ids.tolist())) != n:
            seen: set[str] = set()
            for i, pid in enumerate(self.ids):
                if pid in seen:
                    raise ValueError(f"duplicate pair id {pid!r} at position {i}")
                seen.add(pid)
        for key, value in self.extra.items():
            value = np.asarray(value)
            if value.shape[:1] != (n,):
                raise ValueError(f"extra[{key!r}] must have {n} rows, got shape {value.shape}")
            self.extra[key] = value

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __repr__(self) -> str:
        n = len(self)
        return (
            f"PreferencePairs(n={n}, ai_labelled={int((self.ai_label != 0).sum())}, "
            f"human_labelled={int((self.human_label != 0).sum())}, "
            f"gold_known={int((self.gold_label != 0).sum())})"
        )

    def subset(self, index: np.ndarray | Sequence[int]) -> "PreferencePairs":
        """Return the pairs at ``index`` (integer positions or a boolean mask), copies of all arrays."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        return PreferencePairs(
            ids=self.ids[index],
            prompt=self.prompt[index],
            response_a=self.response_a[index],
            response_b=self.response_b[index],
            ai_label=self.ai_label[index].copy(),
            human_label=self.human_label[index].copy(),
            gold_label=self.gold_label[index].copy(),
            extra={k: v[index].copy() for k, v in self.extra.items()},
        )

    def replace(self, **changes: Any) -> "PreferencePairs":
        """Return a copy with some columns replaced (same validation as the constructor)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values["extra"] = dict(self.extra)
        values.update(changes)
        return PreferencePairs(**values)

    def position(self, ids: Iterable[str]) -> np.ndarray:
        """Positions of the given pair ids, shape (k,). Raises KeyError naming an unknown id."""
        lookup = {pid: i for i, pid in enumerate(self.ids)}
        out = []
        for pid in ids:
            try:
                out.append(lookup[str(pid)])
            except KeyError:
                raise KeyError(f"unknown pair id {pid!r}") from None
        return np.asarray(out, dtype=np.int64)

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, Any]]) -> "PreferencePairs":
        """Build from dicts with keys ``id, prompt, response_a, response_b`` and optional
        ``ai_label, human_label, gold_label`` (ints +1/-1/0 or the strings ``"a"``/``"b"``)."""
        rows = list(records)
        return cls(
            ids=[r["id"] for r in rows],
            prompt=[r["prompt"] for r in rows],
            response_a=[r["response_a"] for r in rows],
            response_b=[r["response_b"] for r in rows],
            ai_label=[parse_label(r.get("ai_label")) for r in rows],
            human_label=[parse_label(r.get("human_label")) for r in rows],
            gold_label=[parse_label(r.get("gold_label")) for r in rows],
        )

    def to_records(self) -> list[dict[str, Any]]:
        """One dict per pair in the canonical JSONL shape (labels as ``"a"``/``"b"``/``None``)."""
        return [
            {
                "id": str(self.ids[i]),
                "prompt": self.prompt[i],
                "response_a": self.response_a[i],
                "response_b": self.response_b[i],
                "ai_label": format_label(self.ai_label[i]),
                "human_label": format_label(self.human_label[i]),
                **({"gold_label": format_label(self.gold_label[i])} if self.gold_label[i] else {}),
            }
            for i in range(len(self))
        ]


_LABEL_WORDS = {
    "a": A_PREFERRED, "response_a": A_PREFERRED, "left": A_PREFERRED, "1": A_PREFERRED, "+1": A_PREFERRED,
    "b": B_PREFERRED, "response_b": B_PREFERRED, "right": B_PREFERRED, "-1": B_PREFERRED,
    "": UNKNOWN, "0": UNKNOWN, "none": UNKNOWN, "null": UNKNOWN, "unknown": UNKNOWN,
}


def parse_label(value: Any) -> int:
    """Parse a label given as +1/-1/0, ``"a"``/``"b"`` (any case) or None into +1/-1/0.

    Raises
    ------
    ValueError
        Naming the value, when it is none of those.
    """
    if value is None:
        return UNKNOWN
    if isinstance(value, bool):
        raise ValueError(f"label {value!r} is ambiguous: use 'a', 'b', +1 or -1")
    if isinstance(value, (int, np.integer)):
        if value in (-1, 0, 1):
            return int(value)
        raise ValueError(f"label {value!r} is not +1 (A), -1 (B) or 0 (unknown)")
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _LABEL_WORDS:
            return _LABEL_WORDS[key]
    raise ValueError(f"label {value!r} is not one of 'a', 'b', +1, -1, 0 or null")


def format_label(value: int) -> str | None:
    """+1 -> ``"a"``, -1 -> ``"b"``, 0 -> None."""
    return {A_PREFERRED: "a", B_PREFERRED: "b"}.get(int(value))


def has_conversation(pairs: PreferencePairs) -> np.ndarray:
    """Which pairs carry their conversation (every one of :data:`MESSAGE_FIELDS`); the export is conversational by
    default when all do.

    Returns
    -------
    ndarray of bool, shape (n,)
    """
    present = np.ones(len(pairs), dtype=bool)
    for key in MESSAGE_FIELDS:
        column = pairs.extra.get(key)
        present &= np.zeros(len(pairs), dtype=bool) if column is None else np.array([v is not None for v in column], bool)
    return present


def chosen_rejected(pairs: PreferencePairs, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The chosen and rejected response of each pair under ``labels`` (shape (n,), nonzero)."""
    labels = np.asarray(labels)
    if (labels == 0).any():
        raise ValueError(f"{int((labels == 0).sum())} pairs have no label; cannot pick chosen/rejected")
    a_wins = labels > 0
    chosen = np.where(a_wins, pairs.response_a, pairs.response_b)
    rejected = np.where(a_wins, pairs.response_b, pairs.response_a)
    return chosen, rejected


def unique_index(*columns: Sequence[Any]) -> tuple[list[Any], list[np.ndarray]]:
    """The distinct values over several columns (texts, or tuples of texts), in order of first appearance, and each
    column as int64 positions into them."""
    lookup: dict[Any, int] = {}
    positions = []
    for column in columns:
        pos = np.empty(len(column), dtype=np.int64)
        for i, value in enumerate(column):
            pos[i] = lookup.setdefault(value, len(lookup))
        positions.append(pos)
    return list(lookup), positions
