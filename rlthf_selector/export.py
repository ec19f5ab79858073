"""Export labelled pairs as a TRL preference data set: ``prompt``, ``chosen``, ``rejected``, plus
``label_source`` (human / ai / flipped / rm) and the pair ``id``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_selector.pairs import LabelSource, PreferencePairs, chosen_rejected

TRL_COLUMNS = ("id", "prompt", "chosen", "rejected", "label_source")


def to_trl_records(
    pairs: PreferencePairs, labels: np.ndarray, label_source: np.ndarray, *, skip_unlabelled: bool = False
) -> list[dict[str, Any]]:
    """One ``{"id","prompt","chosen","rejected","label_source"}`` dict per labelled pair.

    Parameters
    ----------
    pairs : PreferencePairs
    labels : ndarray of int8, shape (n,)
    label_source : ndarray of int8, shape (n,)
    skip_unlabelled : bool
        Leave out pairs with label 0; otherwise they raise ValueError.
    """
    labels = np.asarray(labels)
    label_source = np.asarray(label_source)
    if labels.shape != (len(pairs),) or label_source.shape != (len(pairs),):
        raise ValueError(f"labels {labels.shape} and label_source {label_source.shape} must have shape ({len(pairs)},)")
    keep = labels != 0
    if not skip_unlabelled and not keep.all():
        raise ValueError(f"{int((~keep).sum())} pairs have no label; pass skip_unlabelled=True to leave them out")
    index = np.flatnonzero(keep)
    chosen, rejected = chosen_rejected(pairs.subset(index), labels[index])
    return [
        {
            "id": str(pairs.ids[i]),
            "prompt": pairs.prompt[i],
            "chosen": chosen[j],
            "rejected": rejected[j],
            "label_source": LabelSource(int(label_source[i])).label,
        }
        for j, i in enumerate(index)
    ]


def to_dataset(pairs: PreferencePairs, labels: np.ndarray, label_source: np.ndarray, **kw: Any):
    """The records of :func:`to_trl_records` as a ``datasets.Dataset`` (TRL's RewardTrainer/DPOTrainer input)."""
    from datasets import Dataset

    records = to_trl_records(pairs, labels, label_source, **kw)
    return Dataset.from_dict({c: [r[c] for r in records] for c in TRL_COLUMNS})


def write_trl(
    pairs: PreferencePairs, labels: np.ndarray, label_source: np.ndarray, path: str | os.PathLike, **kw: Any
) -> Path:
    """Write the TRL records to ``path``: ``.jsonl`` (JSON lines) or ``.parquet``; atomically."""
    path = Path(path)
    records = to_trl_records(pairs, labels, label_source, **kw)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if path.suffix == ".jsonl":
        with open(tmp, "w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({c: [r[c] for r in records] for c in TRL_COLUMNS}), tmp)
    else:
        raise ValueError(f"{path}: unknown export format {path.suffix!r}; use .jsonl or .parquet")
    os.replace(tmp, path)
    return path
