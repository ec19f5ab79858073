"""Label Studio labeling configs for pairwise preference, and the mapping between their results and labels.

Three variants ship with the package (``label_config/*.xml``):

``pairwise``
    A ``<Pairwise>`` control over the two responses; the result value is ``{"selected": "left"}``
    (left = response A) or ``"right"``.
``choices``
    A ``<Choices>`` control with the choices ``A`` and ``B``; the result value is ``{"choices": ["A"]}``.
``chat``
    ``pairwise`` for conversations: the prompt's messages (task data ``prompt_messages``) are shown as a dialogue.

They read the task data fields ``prompt`` (``chat`` shows ``prompt_messages`` instead), ``response_a`` and
``response_b``.
Labels follow :mod:`rlthf_selector.pairs`: ``+1`` = A preferred, ``-1`` = B preferred, ``0`` = unknown.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable, Mapping, Sequence

CONFIG_NAMES = ("pairwise", "choices", "chat")
REQUIRED_DATA_FIELDS = ("prompt", "response_a", "response_b")

_CHOICE_WORDS = {"a": 1, "response a": 1, "response_a": 1, "b": -1, "response b": -1, "response_b": -1}


class LabelConfigError(ValueError):
    """A labeling config that the backend cannot map to a pairwise preference."""


class ResultError(ValueError):
    """An annotation or prediction result that does not hold a preference in the project's config."""


def load_label_config(name: str = "pairwise") -> str:
    """The XML text of a shipped labeling config.

    Parameters
    ----------
    name : {"pairwise", "choices", "chat"}
    """
    if name not in CONFIG_NAMES:
        raise LabelConfigError(f"unknown label config {name!r}: choose one of {', '.join(CONFIG_NAMES)}")
    return resources.files(__name__).joinpath(f"{name}.xml").read_text(encoding="utf-8")


@dataclass(frozen=True)
class PreferenceControl:
    """The control tag of a labeling config that carries the preference.

    Attributes
    ----------
    kind : {"pairwise", "choices"}
    from_name : str
        The control's ``name``.
    to_name : str
        The control's ``toName`` (for Pairwise, ``"response_a,response_b"``).
    choice_a, choice_b : str
        For ``choices``: the choice values meaning A and B. Empty for ``pairwise``.
    data_fields : tuple of str
        The task data fields the config reads (``$name`` values), in document order.
    """

    kind: str
    from_name: str
    to_name: str
    choice_a: str = ""
    choice_b: str = ""
    data_fields: tuple[str, ...] = ()

    @property
    def result_type(self) -> str:
        return self.kind

    def result(self, label: int) -> list[dict[str, Any]]:
        """A Label Studio result list holding ``label`` (+1 or -1); an empty list for 0."""
        label = int(label)
        if label == 0:
            return []
        if label not in (1, -1):
            raise ResultError(f"label {label!r} is not +1 (A) or -1 (B)")
        if self.kind == "pairwise":
            value: dict[str, Any] = {"selected": "left" if label > 0 else "right"}
            to_name = self.to_name.split(",")[0].strip()
        else:
            value = {"choices": [self.choice_a if label > 0 else self.choice_b]}
            to_name = self.to_name
        return [{"from_name": self.from_name, "to_name": to_name, "type": self.kind, "value": value}]

    def label_of(self, result: Iterable[Mapping[str, Any]] | None) -> int:
        """The preference held in a result list: +1 (A), -1 (B) or 0 when it holds none for this control.

        Raises
        ------
        ResultError
            When an item of this control holds a value that is not a preference (naming it).
        """
        if not result:
            return 0
        found = 0
        for item in result:
            if not isinstance(item, Mapping) or item.get("from_name") != self.from_name:
                continue
            value = item.get("value")
            if not isinstance(value, Mapping):
                raise ResultError(f"result for {self.from_name!r} has no 'value' object: {item!r}")
            if self.kind == "pairwise":
                selected = value.get("selected")
                if selected not in ("left", "right"):
                    raise ResultError(f"pairwise result 'selected' is {selected!r}, expected 'left' or 'right'")
                found = 1 if selected == "left" else -1
            else:
                choices = value.get("choices")
                if not isinstance(choices, list) or len(choices) != 1:
                    raise ResultError(f"choices result must hold exactly one choice, got {choices!r}")
                found = self._choice_label(choices[0])
        return found

    def _choice_label(self, choice: Any) -> int:
        if choice == self.choice_a:
            return 1
        if choice == self.choice_b:
            return -1
        raise ResultError(f"choice {choice!r} is neither {self.choice_a!r} (A) nor {self.choice_b!r} (B)")


def parse_label_config(xml: str) -> PreferenceControl:
    """Find the preference control in a labeling config.

    Accepts a ``<Pairwise>`` tag, or a ``<Choices>`` tag with exactly two choices meaning A and B
    (values ``A``/``B``, ``Response A``/``Response B`` in any case).

    Raises
    ------
    LabelConfigError
        When the XML does not parse, holds no such control, or lacks a required data field.
    """
    if not isinstance(xml, str) or not xml.strip():
        raise LabelConfigError("label config is empty")
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabelConfigError(f"label config is not valid XML: {exc}") from None
    data_fields = tuple(
        el.get("value", "")[1:] for el in root.iter() if el.get("value", "").startswith("$")
    )
    # The prompt may be shown as text or, for conversations, as its messages.
    shown = set(data_fields) | ({"prompt"} if "prompt_messages" in data_fields else set())
    missing = [f for f in REQUIRED_DATA_FIELDS if f not in shown]
    if missing:
        raise LabelConfigError(
            f"label config does not read the task data field(s) {', '.join(missing)}: "
            f"it must show $prompt (or $prompt_messages), $response_a and $response_b"
        )
    pairwise = [el for el in root.iter("Pairwise")]
    choices = [el for el in root.iter("Choices")]
    if len(pairwise) + len(choices) != 1:
        raise LabelConfigError(
            f"label config must hold exactly one <Pairwise> or <Choices> control, found "
            f"{len(pairwise)} Pairwise and {len(choices)} Choices"
        )
    if pairwise:
        el = pairwise[0]
        name, to_name = el.get("name"), el.get("toName", "")
        if not name or len([t for t in to_name.split(",") if t.strip()]) != 2:
            raise LabelConfigError("<Pairwise> needs a name and toName with two comma-separated names")
        return PreferenceControl("pairwise", name, to_name, data_fields=data_fields)
    el = choices[0]
    name, to_name = el.get("name"), el.get("toName")
    if not name or not to_name:
        raise LabelConfigError("<Choices> needs name and toName attributes")
    values = [c.get("value", "") for c in el.iter("Choice")]
    meaning = {v: _CHOICE_WORDS.get(v.strip().lower()) for v in values}
    a = [v for v, m in meaning.items() if m == 1]
    b = [v for v, m in meaning.items() if m == -1]
    if len(values) != 2 or len(a) != 1 or len(b) != 1:
        raise LabelConfigError(f"<Choices name={name!r}> must hold exactly the two choices A and B, got {values!r}")
    return PreferenceControl("choices", name, to_name, choice_a=a[0], choice_b=b[0], data_fields=data_fields)


def task_data_problems(data: Any, *, required: Sequence[str] = REQUIRED_DATA_FIELDS) -> list[str]:
    """Problems with one task's data dict (empty list when it fits the configs).

    ``prompt``, ``response_a`` and ``response_b`` must be strings; ``ai_label``, when present and not
    null, must be ``"a"`` or ``"b"``; ``pair_id``, when present, a string or an integer.
    """
    if not isinstance(data, Mapping):
        return [f"data must be an object, got {type(data).__name__}"]
    problems = []
    for name in required:
        if name not in data:
            problems.append(f"data.{name} is missing")
        elif not isinstance(data[name], str):
            problems.append(f"data.{name} must be a string, got {type(data[name]).__name__}")
    ai = data.get("ai_label")
    if ai is not None and not (isinstance(ai, str) and ai.strip().lower() in ("a", "b")):
        problems.append(f"data.ai_label must be 'a' or 'b', got {ai!r}")
    pid = data.get("pair_id")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, (str, int))):
        problems.append(f"data.pair_id must be a string or an integer, got {type(pid).__name__}")
    return problems


__all__ = [
    "CONFIG_NAMES",
    "REQUIRED_DATA_FIELDS",
    "LabelConfigError",
    "PreferenceControl",
    "ResultError",
    "load_label_config",
    "parse_label_config",
    "task_data_problems",
]
