"""A judge for machines with no API: any Hugging Face causal LM directory, scored without generating.

The prompt is the same as for API judges (rendered with the tokenizer's chat template when it has one, with
the assistant turn opened). The judge's verdict is the more likely next token of ``"A"`` and ``"B"``: the
log-probability of each letter sums the single-token spellings the tokenizer has for it (``"A"``, ``" A"``),
and ``p_first = sigmoid(log p(A) - log p(B))``. Both orders are scored like any other judge's, so a model's
position bias cancels as well.

transformers and torch are imported when a model is loaded, not before.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from rlthf_selector.judge.base import OrderVerdict, PairJudge
from rlthf_selector.judge.prompts import PromptTemplate

logger = logging.getLogger(__name__)


class LocalJudge(PairJudge):
    """Judge pairs with a local causal language model.

    Parameters
    ----------
    model_dir : str or Path
        A directory ``AutoModelForCausalLM.from_pretrained`` and ``AutoTokenizer.from_pretrained`` read
        (nothing is downloaded: ``local_files_only=True``).
    template : PromptTemplate, optional
    device : str
        torch device, e.g. ``"cpu"`` or ``"cuda"``.
    max_length : int
        Longest prompt in tokens. A longer one is not truncated (that could cut a response in half):
        that order gets no verdict, with reason ``too_long``.
    model, tokenizer : optional
        Already-loaded objects to use instead of loading ``model_dir`` (the tokenizer needs ``encode`` and
        ``__call__``; the model's output needs ``logits`` of shape (1, T, V)).
    name : str, optional
        Name in ``judge_labels``; default the directory name.
    """

    max_concurrency = 1  # one forward pass at a time; torch uses the cores itself

    def __init__(
        self,
        model_dir: str | Path,
        *,
        template: PromptTemplate | None = None,
        device: str = "cpu",
        max_length: int = 4096,
        model: Any = None,
        tokenizer: Any = None,
        name: str | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.template = template or PromptTemplate()
        self.device = device
        self.max_length = int(max_length)
        self.name = name or self.model_dir.name or "local-model"
        if model is None or tokenizer is None:
            if not self.model_dir.is_dir():
                raise FileNotFoundError(f"local judge model directory {self.model_dir} does not exist")
            from transformers import AutoModelForCausalLM, AutoTokenizer

            tokenizer = tokenizer or AutoTokenizer.from_pretrained(str(self.model_dir), local_files_only=True)
            model = model or AutoModelForCausalLM.from_pretrained(str(self.model_dir), local_files_only=True)
        self.tokenizer = tokenizer
        self.model = model
        if hasattr(self.model, "to"):
            self.model.to(device)
        if hasattr(self.model, "eval"):
            self.model.eval()
        self.letter_ids = {letter: letter_token_ids(self.tokenizer, letter) for letter in ("A", "B")}
        if set(self.letter_ids["A"]) & set(self.letter_ids["B"]):
            raise ValueError(f"tokenizer of {self.model_dir} cannot tell 'A' from 'B' as single tokens")

    def signature(self) -> dict[str, Any]:
        return {
            "kind": "local-causal-lm",
            "model": str(self.model_dir.resolve()) if self.model_dir.exists() else self.name,
            "template": self.template.sha256,
        }

    def render(self, prompt: str, first: str, second: str) -> str:
        """The text fed to the model: chat template if the tokenizer has one, else plain text ending in
        ``"Answer:"``."""
        messages = self.template.messages(prompt, first, second)
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        body = "\n\n".join(m["content"] for m in messages)
        return body + "\n\nAnswer:"

    def letter_logprobs(self, text: str) -> tuple[float, float]:
        """log p(A) and log p(B) as the next token after ``text``."""
        import torch

        encoded = self.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        input_ids = encoded["input_ids"].to(self.device)
        if input_ids.shape[1] > self.max_length:
            raise _TooLong(f"{input_ids.shape[1]} tokens > max_length {self.max_length}")
        with torch.no_grad():
            logits = self.model(input_ids=input_ids, attention_mask=encoded.get("attention_mask")).logits
        logp = torch.log_softmax(logits[0, -1].float(), dim=-1)
        a = torch.logsumexp(logp[list(self.letter_ids["A"])], dim=0).item()
        b = torch.logsumexp(logp[list(self.letter_ids["B"])], dim=0).item()
        return float(a), float(b)

    def judge_order(self, prompt: str, first: str, second: str) -> OrderVerdict:
        text = self.render(prompt, first, second)
        try:
            log_a, log_b = self.letter_logprobs(text)
        except _TooLong as exc:
            return OrderVerdict(None, reason=f"too_long: {exc}")
        usage = {"prompt_tokens": 0, "completion_tokens": 0}
        p_first = _sigmoid(log_a - log_b)
        if log_a == log_b or not math.isfinite(p_first):
            return OrderVerdict(None, reason="malformed: the model scores A and B the same", usage=usage)
        return OrderVerdict(
            "A" if log_a > log_b else "B", p_first=p_first, raw=f"logp(A)={log_a:.4f} logp(B)={log_b:.4f}", usage=usage
        )

    def close(self) -> None:
        self.model = None


class _TooLong(Exception):
    pass


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def letter_token_ids(tokenizer: Any, letter: str) -> tuple[int, ...]:
    """Token ids that spell ``letter`` alone (``"A"`` and ``" A"``), deduplicated.

    Raises
    ------
    ValueError
        When no spelling of the letter is a single token.
    """
    ids: list[int] = []
    for spelling in (letter, " " + letter):
        encoded = tokenizer.encode(spelling, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(int(encoded[0]))
    unk = getattr(tokenizer, "unk_token_id", None)
    ids = [i for i in ids if i != unk]
    if not ids:
        raise ValueError(f"the tokenizer has no single token for {letter!r}; this model cannot be a local judge")
    return tuple(ids)
