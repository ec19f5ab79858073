"""The pairwise-judging prompt, its template files and the reading of a judge's answer.

The judge sees one conversation and two responses, labelled ``A`` and ``B`` in the order they are shown,
and answers with one letter. Each pair is shown twice, once in each order (see :mod:`rlthf_selector.judge.merge`),
so a judge that always prefers the first position cancels out instead of labelling half the data wrong.

A template file replaces the user message. It is plain text with three placeholders, each used at least once:
``{prompt}``, ``{response_a}`` and ``{response_b}`` (the response shown first and second). Nothing else in
the file is interpreted, so braces in it need no escaping.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

PLACEHOLDERS = ("{prompt}", "{response_a}", "{response_b}")

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful, impartial judge of AI assistant responses. You compare two responses to the same "
    "conversation and decide which one is better: more helpful, correct, honest and harmless, and more "
    "relevant to what the user asked. Do not let the order in which the responses are shown, their length "
    "or their style decide. Answer with a single letter: A or B."
)

DEFAULT_TEMPLATE = """[Conversation]
{prompt}

[Response A]
{response_a}

[Response B]
{response_b}

Which response is better? Answer with exactly one letter, A or B, and nothing else."""

# Appended to the user message when the first answer could not be read.
STRICT_INSTRUCTION = (
    "\n\nIMPORTANT: your previous answer could not be read. Reply with only the single letter A or the "
    "single letter B. No other words, no punctuation, no explanation."
)


class TemplateError(ValueError):
    """A prompt template file is unreadable or lacks a placeholder."""


@dataclass(frozen=True)
class PromptTemplate:
    """The system prompt and user-message template a judge is asked with.

    Attributes
    ----------
    user : str
        The user message, with ``{prompt}``, ``{response_a}`` and ``{response_b}``.
    system : str
        The system message; empty = none is sent.
    """

    user: str = DEFAULT_TEMPLATE
    system: str = DEFAULT_SYSTEM_PROMPT

    def __post_init__(self) -> None:
        missing = [p for p in PLACEHOLDERS if p not in self.user]
        if missing:
            raise TemplateError(f"prompt template lacks the placeholder(s) {', '.join(missing)}")

    @property
    def sha256(self) -> str:
        """Hash of system and user text: part of every cache key, so a new prompt is asked anew."""
        h = hashlib.sha256(self.system.encode("utf-8"))
        h.update(b"\x00")
        h.update(self.user.encode("utf-8"))
        return h.hexdigest()

    def messages(self, prompt: str, first: str, second: str, *, strict: bool = False) -> list[dict[str, str]]:
        """Chat messages asking which of ``first`` (shown as A) and ``second`` (shown as B) is better.

        ``strict`` appends :data:`STRICT_INSTRUCTION`, for the one retry after an unreadable answer.
        """
        # One pass over the template so a response that itself contains "{response_b}" is not expanded.
        values = {"{prompt}": prompt, "{response_a}": first, "{response_b}": second}
        user = re.sub(r"\{prompt\}|\{response_a\}|\{response_b\}", lambda m: values[m.group(0)], self.user)
        if strict:
            user += STRICT_INSTRUCTION
        out = [{"role": "system", "content": self.system}] if self.system else []
        out.append({"role": "user", "content": user})
        return out


def load_template(template_path: str | Path | None = None, system_path: str | Path | None = None) -> PromptTemplate:
    """Build a :class:`PromptTemplate` from optional files (empty or None = the built-in text).

    ``system_path`` may be the word ``none`` to send no system message.

    Raises
    ------
    TemplateError
        Naming the file, when it cannot be read or lacks a placeholder.
    """
    user, system = DEFAULT_TEMPLATE, DEFAULT_SYSTEM_PROMPT
    if template_path:
        try:
            user = Path(template_path).read_text(encoding="utf-8")
        except OSError as exc:
            raise TemplateError(f"cannot read prompt template {template_path}: {exc}") from None
    if system_path:
        if str(system_path).lower() == "none":
            system = ""
        else:
            try:
                system = Path(system_path).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise TemplateError(f"cannot read system prompt {system_path}: {exc}") from None
    try:
        return PromptTemplate(user=user, system=system)
    except TemplateError as exc:
        raise TemplateError(f"{template_path}: {exc}") from None


# ---------------------------------------------------------------------------------------------- answers

_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.S | re.I)
_WHOLE_ANSWER = re.compile(
    r"^(?:(?:the\s+)?(?:better\s+|best\s+|final\s+)?(?:response|answer|option|output|assistant|choice|verdict)"
    r"\s*(?:is\s*)?:?\s*)?[\[\(\*\"'`]*\s*([AB])\s*[\]\)\*\"'`]*\s*[.!]?$",
    re.I,
)
_BRACKETED = re.compile(r"\[\[\s*([AB])\s*\]\]")
_STATED = re.compile(
    r"\b(?i:answer|verdict|choice|winner|better(?:\s+response)?|best(?:\s+response)?|prefer(?:red)?)"
    r"\s*(?i:is|:|=|-)?\s*(?i:response\s+|option\s+)?[\[\(\*\"'`]*([AB])\b"
)


def parse_verdict(text: str | None) -> str | None:
    """Read the judge's choice out of its answer.

    Parameters
    ----------
    text : str or None
        The message content returned by the judge.

    Returns
    -------
    ``"A"``, ``"B"`` or None when the answer names neither or both. A lone letter (any case, with
    brackets, bold or a full stop), ``Response A``, ``[[B]]`` and ``Answer: A`` are read; ``<think>`` blocks
    are ignored. In running prose only an upper-case letter after words like "answer" or "better" counts,
    so the article "a" is never taken for a verdict.
    """
    if not text:
        return None
    cleaned = _THINK_BLOCK.sub("", text).strip()
    if "<think>" in cleaned.lower():  # an unfinished reasoning block: the answer was cut off
        return None
    match = _WHOLE_ANSWER.match(cleaned)
    if match:
        return match.group(1).upper()
    for pattern in (_BRACKETED, _STATED):
        letters = {m.group(1) for m in pattern.finditer(cleaned)}
        if len(letters) == 1:
            return letters.pop()
        if len(letters) > 1:
            return None
    return None


def _letter(token: str) -> str | None:
    core = token.strip().strip("[]()*\"'`.:!").strip()
    return core.upper() if core.upper() in ("A", "B") else None


def first_position_probability(logprobs: Mapping[str, Any] | None, verdict: str | None) -> float | None:
    """P(the response shown first is better) from the token log-probabilities of a chat completion.

    Parameters
    ----------
    logprobs : mapping or None
        ``choices[0].logprobs`` of an OpenAI-compatible response, with ``content`` a list of
        ``{"token", "logprob", "top_logprobs": [{"token", "logprob"}, ...]}``.
    verdict : "A", "B" or None
        The parsed verdict; the probability is only returned when the first letter token agrees with it.

    Returns
    -------
    float in [0, 1] or None
        ``p(A) / (p(A) + p(B))`` at the first generated token that is a verdict letter, summing the
        variants of each letter (``"A"``, ``" A"``, ``"a"``) among the top alternatives. None when the
        server sent no log-probabilities or the letter is not found.
    """
    if not logprobs or verdict is None:
        return None
    content: Sequence[Mapping[str, Any]] = logprobs.get("content") or []
    for item in content:
        letter = _letter(str(item.get("token", "")))
        if letter is None:
            continue
        if letter != verdict:
            return None
        mass = {"A": 0.0, "B": 0.0}
        alternatives = list(item.get("top_logprobs") or [])
        if not any(alt.get("token") == item.get("token") for alt in alternatives):
            alternatives.append({"token": item.get("token"), "logprob": item.get("logprob")})
        for alt in alternatives:
            alt_letter = _letter(str(alt.get("token", "")))
            lp = alt.get("logprob")
            if alt_letter is None or lp is None or not math.isfinite(float(lp)):
                continue
            mass[alt_letter] += math.exp(float(lp))
        total = mass["A"] + mass["B"]
        return mass["A"] / total if total > 0 else None
    return None
