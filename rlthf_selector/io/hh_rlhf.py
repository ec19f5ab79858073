"""Anthropic HH-RLHF transcripts (``{"chosen": ..., "rejected": ...}`` a line), from files or the Hugging Face Hub
(:func:`load_hh_rlhf`, :func:`load_hh_rlhf_hub`).

The A/B order is randomised per pair with ``np.random.default_rng(seed)`` so a response's position never gives its
label away.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

from rlthf_selector.io.rows import (
    _LABELS_AS,
    LoadReport,
    _check_on_error,
    _Columns,
    _file_stem,
    _finish,
    _handle,
    _iter_jsonl,
    _read_bytes,
    _require_text,
)
from rlthf_selector.pairs import A_PREFERRED, B_PREFERRED, UNKNOWN, PreferencePairs
from rlthf_selector.validation import PairValidationError, check_choice

__all__ = ["load_hh_rlhf", "load_hh_rlhf_hub", "split_hh_transcripts"]

HH_ASSISTANT = "\n\nAssistant:"
HH_HUMAN = "\n\nHuman:"


def split_hh_transcripts(chosen: str, rejected: str) -> tuple[str, str, str] | None:
    """Split two HH-RLHF transcripts into (prompt, chosen response, rejected response).

    The prompt is the shared prefix up to and including the last ``"\\n\\nAssistant:"`` that lies inside
    the common prefix of both transcripts (leading whitespace removed); the rest of each transcript,
    stripped, is its response. Returns None when no such marker is shared.
    """
    n = len(_common_prefix(chosen, rejected))
    k = chosen.rfind(HH_ASSISTANT, 0, n)
    if k < 0:
        return None
    cut = k + len(HH_ASSISTANT)
    return chosen[:cut].lstrip(), chosen[cut:].strip(), rejected[cut:].strip()


def load_hh_rlhf(
    paths: str | Path | Sequence[str | Path],
    *,
    seed: int = 0,
    limit: int | None = None,
    labels_as: str | None = None,
    on_error: str = "raise",
) -> tuple[PreferencePairs, LoadReport]:
    """Load Anthropic HH-RLHF files (``.jsonl`` or ``.jsonl.gz``, ``{"chosen": ..., "rejected": ...}`` a line).

    The prompt and the two responses come from :func:`split_hh_transcripts`. Rows are skipped, counted by
    reason and warned about when the transcripts share no ``"\\n\\nAssistant:"`` prefix ("no shared prompt
    prefix"), when a response runs over several turns ("responses span several turns") or when the two
    responses are identical ("identical responses"). Empty responses are kept and counted in the notes.

    Parameters
    ----------
    paths : path or sequence of paths
        Files read in order; one random stream (``np.random.default_rng(seed)``) decides A/B per row.
    seed : int
        Seed for the A/B order.
    limit : int, optional
        Stop once this many pairs are loaded.
    labels_as : {None, "human", "ai"}
        Also copy the gold label (chosen) into ``human_label`` or ``ai_label``.
    on_error : {"raise", "skip"}
        What to do with malformed lines (invalid JSON, missing or non-string fields).

    Returns
    -------
    pairs : PreferencePairs
        Ids ``f"{file_stem}-{row}"`` (0-based row in the file); ``gold_label`` = +1 where chosen is A.
    report : LoadReport
    """
    path_list = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    if not path_list:
        raise ValueError("no HH-RLHF files given")
    stems = _unique_stems(path_list)

    def files() -> Iterator[tuple[str, str, Iterator[tuple[int | None, Any]]]]:
        for path, stem in zip(path_list, stems):
            raw = _read_bytes(path)
            if not raw.strip():
                raise PairValidationError("file is empty", source=str(path), reason="empty file")
            yield str(path), stem, _iter_jsonl(raw, str(path), report)

    report = LoadReport(source=", ".join(str(p) for p in path_list))
    return _load_hh(files(), report, seed=seed, limit=limit, labels_as=labels_as, on_error=on_error)


def _load_hh(
    sources: Iterable[tuple[str, str, Iterable[tuple[int | None, Any]]]],
    report: LoadReport,
    *,
    seed: int,
    limit: int | None,
    labels_as: str | None,
    on_error: str,
) -> tuple[PreferencePairs, LoadReport]:
    """Shared core of the HH loaders: ``sources`` yields (source, id stem, [(line or None, record or error)])."""
    _check_on_error(on_error)
    check_choice(labels_as, _LABELS_AS, "labels_as")
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of pairs, got {limit}")
    columns = _Columns()
    rng = np.random.default_rng(seed)
    empty_responses = 0
    for source, stem, items in sources:
        for row, (lineno, item) in enumerate(items):
            if lineno is None:
                report.n_read += 1  # JSONL lines are counted by _iter_jsonl
            swap = rng.random() < 0.5  # drawn for every row, so a row's order does not depend on other rows
            at = PairValidationError("", source=source, line=lineno, row=row if lineno is None else None)
            try:
                if isinstance(item, PairValidationError):
                    raise item
                chosen, rejected = _require_text(item, "chosen", at), _require_text(item, "rejected", at)
            except PairValidationError as err:
                _handle(err, on_error, report)
                continue
            split = split_hh_transcripts(chosen, rejected)
            if split is None:
                report.skip("no shared prompt prefix", where=at.where)
                continue
            prompt, good, bad = split
            if HH_HUMAN in good or HH_HUMAN in bad:
                report.skip("responses span several turns", where=at.where)
                continue
            if good == bad:
                report.skip("identical responses", where=at.where)
                continue
            empty_responses += (good == "") + (bad == "")
            gold = B_PREFERRED if swap else A_PREFERRED
            a, b = (bad, good) if swap else (good, bad)
            columns.add(f"{stem}-{row}", prompt, a, b, gold=gold, ai=gold if labels_as == "ai" else UNKNOWN,
                        human=gold if labels_as == "human" else UNKNOWN, where=at.where)
            if limit is not None and len(columns) >= limit:
                break
        if limit is not None and len(columns) >= limit:
            report.notes.append(f"stopped at limit={limit} pairs")
            break
    if empty_responses:
        report.notes.append(f"{empty_responses} responses are empty (kept: an empty reply is a real, usually bad, answer)")
    return _finish(columns, report)


def _unique_stems(paths: list[Path]) -> list[str]:
    stems = [_file_stem(p) for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    # e.g. harmless-base/test.jsonl.gz and helpful-base/test.jsonl.gz: qualify by the parent folder.
    stems = [f"{p.parent.name}-{s}" if p.parent.name else s for p, s in zip(paths, stems)]
    if len(set(stems)) != len(stems):
        dup = [s for s, c in Counter(stems).items() if c > 1]
        raise ValueError(f"HH-RLHF files would give clashing pair ids {dup}; pass each file once")
    return stems


def load_hh_rlhf_hub(
    split: str = "test",
    data_dir: str | None = None,
    *,
    seed: int = 0,
    limit: int | None = None,
    labels_as: str | None = None,
    on_error: str = "raise",
) -> tuple[PreferencePairs, LoadReport]:
    """Download HH-RLHF from the Hugging Face Hub (needs internet) and load it like :func:`load_hh_rlhf`.

    Calls ``datasets.load_dataset("Anthropic/hh-rlhf", data_dir=data_dir, split=split)``; ``data_dir`` is
    e.g. ``"harmless-base"``. Ids are ``f"{data_dir or 'hh-rlhf'}-{split}-{row}"``.
    """
    import datasets

    ds = datasets.load_dataset("Anthropic/hh-rlhf", data_dir=data_dir, split=split)
    source = f"hub:Anthropic/hh-rlhf/{data_dir or ''}[{split}]"
    stem = f"{data_dir or 'hh-rlhf'}-{split}"
    report = LoadReport(source=source)
    return _load_hh([(source, stem, ((None, r) for r in ds))], report, seed=seed, limit=limit,
                    labels_as=labels_as, on_error=on_error)


# ----------------------------------------------------------------------------------------------------------------


def _common_prefix(a: str, b: str) -> str:
    n = 0
    limit = min(len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return a[:n]
