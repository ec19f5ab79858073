"""A resumable, append-only cache of judge answers, so an interrupted run continues and never pays twice.

One JSON object a line: ``{"key": sha256, "judge": name, "pair_id": id, "order": "ab"|"ba", "verdict": ...}``.
The key hashes the judge's signature (model, prompt-template hash, decoding settings), the three texts as
shown and the order; the pair id and order are stored for people reading the file, not for lookups, so two
pairs with the same texts share one answer. Each answer is appended and flushed as soon as it arrives. A line
cut short by a killed process is skipped with a warning, and its pair is asked again.

Transport failures are never cached; unreadable answers are (they were paid for, and asking the same model
the same thing again would return the same).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Mapping

logger = logging.getLogger(__name__)


def answer_key(signature: Mapping[str, Any], prompt: str, first: str, second: str, order: str) -> str:
    """The cache key of one displayed pair under one judge (hex sha256).

    Parameters
    ----------
    signature : mapping
        :meth:`PairJudge.signature`, JSON-serialisable.
    prompt, first, second : str
        The conversation and the responses in display order.
    order : {"ab", "ba"}
        Whether the pair's response A is shown first (``"ab"``) or second.
    """
    h = hashlib.sha256(json.dumps(signature, sort_keys=True, ensure_ascii=False).encode("utf-8"))
    for part in (order, prompt, first, second):
        h.update(b"\x00" + str(len(part)).encode("ascii") + b"\x00")  # length-prefixed: no ambiguity
        h.update(part.encode("utf-8", errors="surrogatepass"))
    return h.hexdigest()


class JudgeCache:
    """Append-only JSONL store of judge answers keyed by :func:`answer_key`.

    Parameters
    ----------
    path : str or Path
        The cache file; created (with its directory) if absent, read and appended to if present.

    Attributes
    ----------
    n_loaded : int
        Answers read from the file when it was opened.
    n_corrupt : int
        Lines that could not be read (e.g. cut short by a killed run) and were skipped.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._entries: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.n_corrupt = 0
        if self.path.exists():
            self._load()
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self.n_loaded = len(self._entries)
        self._fh = open(self.path, "a", encoding="utf-8")
        if self.path.stat().st_size and not self._ends_with_newline():
            self._fh.write("\n")  # start after a torn last line, never glued onto it

    def _ends_with_newline(self) -> bool:
        with open(self.path, "rb") as fh:
            fh.seek(-1, os.SEEK_END)
            return fh.read(1) == b"\n"

    def _load(self) -> None:
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    key = record["key"]
                    if not isinstance(key, str):
                        raise TypeError("key is not a string")
                except (ValueError, KeyError, TypeError) as exc:
                    self.n_corrupt += 1
                    logger.warning(
                        "%s line %d: unreadable cache entry skipped (%s); that answer is asked again",
                        self.path,
                        lineno,
                        exc,
                    )
                    continue
                self._entries[key] = record
        logger.info("judge cache %s: %d answers", self.path, len(self._entries))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record for ``key``, or None."""
        return self._entries.get(key)

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        """Store ``record`` under ``key`` and append it to the file (flushed at once)."""
        entry = {"key": key, **record}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            self._entries[key] = entry
            if self._fh.closed:  # an answer that arrived after close() (e.g. after Ctrl-C) is still kept
                self._fh = open(self.path, "a", encoding="utf-8")
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        with self._lock:
            if not self._fh.closed:
                self._fh.close()

    def __enter__(self) -> "JudgeCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
