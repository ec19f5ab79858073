"""Export labelled pairs as a TRL preference data set: ``prompt``, ``chosen``, ``rejected``, plus
``label_source`` (human / ai / flipped / rm) and the pair ``id``.

Pairs that came as conversations (:func:`rlthf_selector.io.load_trl` keeps their messages in
:data:`~rlthf_selector.pairs.MESSAGE_FIELDS`) are written back as conversations, in TRL's conversational format
(lists of ``{"role", "content"}`` messages), so TRL applies the model's chat template to them as it would have
to the input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from rlthf_selector.pairs import MESSAGE_FIELDS, LabelSource, PreferencePairs, chosen_rejected, has_conversation

TRL_COLUMNS = ("id", "prompt", "chosen", "rejected", "label_source")


def to_trl_records(
    pairs: PreferencePairs,
    labels: np.ndarray,
    label_source: np.ndarray,
    *,
    skip_unlabelled: bool = False,
    conversational: bool | None = None,
) -> list[dict[str, Any]]:
    """One ``{"id","prompt","chosen","rejected","label_source"}`` dict per labelled pair.

    Parameters
    ----------
    pairs : PreferencePairs
    labels : ndarray of int8, shape (n,)
    label_source : ndarray of int8, shape (n,)
    skip_unlabelled : bool
        Leave out pairs with label 0; otherwise they raise ValueError.
    conversational : bool, optional
        ``prompt``, ``chosen`` and ``rejected`` as message lists, from the pairs' conversations. None (the
        default): when every exported pair has one, else the texts (TRL needs one format per data set). True:
        every exported pair must have one. False: always the texts.

    Raises
    ------
    ValueError
        Unlabelled pairs (unless skipped), shapes that do not match, or ``conversational=True`` with a pair that
        came as plain text (named).
    """
    labels = np.asarray(labels)
    label_source = np.asarray(label_source)
    if labels.shape != (len(pairs),) or label_source.shape != (len(pairs),):
        raise ValueError(f"labels {labels.shape} and label_source {label_source.shape} must have shape ({len(pairs)},)")
    keep = labels != 0
    if not skip_unlabelled and not keep.all():
        raise ValueError(f"{int((~keep).sum())} pairs have no label; pass skip_unlabelled=True to leave them out")
    index = np.flatnonzero(keep)
    if conversational is not False and _conversations_for(pairs, index, required=bool(conversational)):
        prompt_messages, a_messages, b_messages = (pairs.extra[key] for key in MESSAGE_FIELDS)
        return [
            {
                "id": str(pairs.ids[i]),
                "prompt": list(prompt_messages[i]),
                "chosen": list(a_messages[i] if labels[i] > 0 else b_messages[i]),
                "rejected": list(b_messages[i] if labels[i] > 0 else a_messages[i]),
                "label_source": LabelSource(int(label_source[i])).label,
            }
            for i in index
        ]
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


def _conversations_for(pairs: PreferencePairs, index: np.ndarray, *, required: bool) -> bool:
    """Whether every pair at ``index`` has its conversation; with ``required``, a ValueError names one without."""
    present = has_conversation(pairs)[index]
    if present.all() and index.size:
        return True
    if required:
        first = pairs.ids[index[np.flatnonzero(~present)[0]]] if index.size else None
        raise ValueError(f"conversational export: {int((~present).sum())} of {index.size} pairs came as plain text "
                         f"(first: {first!r}), with no {' / '.join(MESSAGE_FIELDS)} to write; "
                         f"leave conversational=None to write the texts")
    return False


def to_dataset(pairs: PreferencePairs, labels: np.ndarray, label_source: np.ndarray, **kw: Any):
    """The records of :func:`to_trl_records` as a ``datasets.Dataset`` (TRL's RewardTrainer/DPOTrainer input)."""
    from datasets import Dataset

    records = to_trl_records(pairs, labels, label_source, **kw)
    return Dataset.from_dict({c: [r[c] for r in records] for c in TRL_COLUMNS})


def write_trl(
    pairs: PreferencePairs, labels: np.ndarray, label_source: np.ndarray, path: str | os.PathLike, **kw: Any
) -> Path:
    """Write the TRL records of :func:`to_trl_records` (keywords passed on) to ``path``: ``.jsonl`` (JSON lines) or
    ``.parquet``; atomically."""
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

        try:
            table = pa.table({c: [r[c] for r in records] for c in TRL_COLUMNS})
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:  # e.g. message contents that are text here, parts there
            raise ValueError(f"{path}: the records do not fit one parquet schema ({exc}); write .jsonl instead") from None
        pq.write_table(table, tmp)
    else:
        raise ValueError(f"{path}: unknown export format {path.suffix!r}; use .jsonl or .parquet")
    os.replace(tmp, path)
    return path
