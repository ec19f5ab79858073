"""The small interface every judge implements, and the errors it may raise.

A judge answers one question: shown a prompt and two responses in a given order, which is better? It returns
an :class:`OrderVerdict` in *display* terms (``"A"`` = the response shown first). Showing both orders and
mapping back to the pair's own A/B is the runner's job (:mod:`rlthf_selector.judge.runner`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


class JudgeError(RuntimeError):
    """Base class of judge errors."""


class JudgeFatalError(JudgeError):
    """An error no retry can fix (bad key, unknown model, wrong URL): the run stops, the cache is kept."""


@dataclass
class OrderVerdict:
    """One judge's answer for one pair shown in one order.

    Attributes
    ----------
    verdict : "A", "B" or None
        The response the judge prefers, in display terms (``"A"`` = shown first). None = no verdict.
    p_first : float or None
        The judge's probability that the response shown first is better (from token log-probabilities);
        None when the judge does not expose them.
    reason : str or None
        Why there is no verdict, as ``"category: detail"``. Categories: ``malformed`` (the answer named
        neither letter, even after the stricter retry; cached), ``request_failed`` (transport errors after
        every retry, or a request the server refused; not cached, a rerun asks again).
    raw : str
        The judge's answer text (truncated), kept for inspection.
    usage : dict
        ``prompt_tokens`` and ``completion_tokens`` spent on this answer (all attempts).
    attempts : int
        Requests made, retries and the stricter re-ask included.
    cacheable : bool
        False for transport failures, which a later run should retry.
    """

    verdict: str | None
    p_first: float | None = None
    reason: str | None = None
    raw: str = ""
    usage: dict[str, int] = field(default_factory=dict)
    attempts: int = 1
    cacheable: bool = True

    def to_cache(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "p_first": self.p_first,
            "reason": self.reason,
            "raw": self.raw,
            "usage": dict(self.usage),
        }

    @classmethod
    def from_cache(cls, record: dict[str, Any]) -> "OrderVerdict":
        verdict = record.get("verdict")
        if verdict not in ("A", "B", None):
            raise ValueError(f"cached verdict {verdict!r} is not 'A', 'B' or null")
        p_first = record.get("p_first")
        return cls(
            verdict=verdict,
            p_first=None if p_first is None else float(p_first),
            reason=record.get("reason"),
            raw=str(record.get("raw", "")),
            usage=dict(record.get("usage") or {}),
            attempts=0,
        )


class PairJudge(abc.ABC):
    """A judge of one displayed pair.

    Subclasses set :attr:`name` (the key in ``judge_labels``) and :attr:`max_concurrency`, and implement
    :meth:`signature` and :meth:`judge_order`.
    """

    name: str
    #: Most calls of :meth:`judge_order` the runner may make at once (1 = not thread-safe).
    max_concurrency: int = 1

    @abc.abstractmethod
    def signature(self) -> dict[str, Any]:
        """What, besides the pair texts, decides the answer (model, prompt hash, decoding settings).

        Part of the cache key: change any of it and pairs are asked again.
        """

    @abc.abstractmethod
    def judge_order(self, prompt: str, first: str, second: str) -> OrderVerdict:
        """Judge ``first`` (shown as A) against ``second`` (shown as B).

        Raises
        ------
        JudgeFatalError
            When no further request can succeed (e.g. the server rejects the key).
        """

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (connections, models)."""
