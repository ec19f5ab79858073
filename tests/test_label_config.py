"""The shipped labeling configs: XML structure, result <-> label mapping, and acceptance by a real Label Studio."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import pytest

from label_config import (
    CONFIG_NAMES,
    LabelConfigError,
    ResultError,
    load_label_config,
    parse_label_config,
    task_data_problems,
)


# The control each shipped config carries, and how it shows the prompt.
KIND = {"pairwise": "pairwise", "choices": "choices", "chat": "pairwise"}
PROMPT_FIELD = {"pairwise": "$prompt", "choices": "$prompt", "chat": "$prompt_messages"}
CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "p"}]


def test_every_shipped_config_is_described():
    assert set(KIND) == set(PROMPT_FIELD) == set(CONFIG_NAMES)


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_shipped_configs_parse_and_read_the_task_fields(name):
    xml = load_label_config(name)
    root = ET.fromstring(xml)
    assert root.tag == "View"
    values = {el.get("value") for el in root.iter() if (el.get("value") or "").startswith("$")}
    assert values == {PROMPT_FIELD[name], "$response_a", "$response_b"}
    control = parse_label_config(xml)
    assert control.kind == KIND[name] and control.from_name == "preference"


def test_chat_shows_the_prompt_messages_as_a_dialogue():
    (dialogue,) = ET.fromstring(load_label_config("chat")).iter("Paragraphs")
    assert (dialogue.get("value"), dialogue.get("layout"), dialogue.get("nameKey"), dialogue.get("textKey")) == (
        "$prompt_messages", "dialogue", "role", "content")  # the keys of TRL's messages


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_the_responses_stand_side_by_side_headed_each_scrolling_with_instructions_above(name):
    root = ET.fromstring(load_label_config(name))
    parent = {child: node for node in root.iter() for child in node}
    boxes = {}
    for text in root.iter("Text"):
        if text.get("value") in ("$response_a", "$response_b"):
            box = parent[text]  # its own scrolling box ...
            assert "overflow-y: auto" in box.get("style", "") and "max-height" in box.get("style", "")
            column = parent[box]  # ... under a header naming it, in one of two columns of a flex row
            (header,) = [el for el in column if el.tag == "Header"]
            boxes[text.get("value")[-1]] = (header.get("value"), parent[column])
    (heading_a, row_a), (heading_b, row_b) = boxes["a"], boxes["b"]
    assert heading_a.endswith(" A") and heading_b.endswith(" B") and row_a is row_b
    assert "display: flex" in row_a.get("style", "")
    columns = [el for el in row_a if el.tag == "View"]
    assert [c.find("Header").get("value")[-1] for c in columns] == ["A", "B"]  # A left, as the data gives it
    instructions = root.find("View/Header[@size='6']")
    assert instructions is not None and "Ctrl+Enter" in instructions.get("value") and "Skip" in instructions.get("value")
    if KIND[name] == "choices":
        assert {c.get("value"): c.get("hotkey") for c in root.iter("Choice")} == {"A": "1", "B": "2"}


def test_pairwise_result_shape_and_round_trip():
    control = parse_label_config(load_label_config("pairwise"))
    assert control.result(1) == [{"from_name": "preference", "to_name": "response_a", "type": "pairwise", "value": {"selected": "left"}}]
    assert control.result(-1)[0]["value"] == {"selected": "right"}
    assert control.result(0) == []
    for label in (1, -1):
        assert control.label_of(control.result(label)) == label


def test_choices_result_shape_and_round_trip():
    control = parse_label_config(load_label_config("choices"))
    assert control.result(-1) == [{"from_name": "preference", "to_name": "prompt", "type": "choices", "value": {"choices": ["B"]}}]
    for label in (1, -1):
        assert control.label_of(control.result(label)) == label
    assert control.label_of([]) == 0
    assert control.label_of([{"from_name": "other", "value": {"choices": ["A"]}}]) == 0  # another control's result


@pytest.mark.parametrize("result,words", [
    ([{"from_name": "preference", "value": {"choices": ["C"]}}], "neither 'A'"),
    ([{"from_name": "preference", "value": {"choices": ["A", "B"]}}], "exactly one choice"),
    ([{"from_name": "preference"}], "no 'value'"),
])
def test_results_that_hold_no_preference_raise_naming_the_value(result, words):
    control = parse_label_config(load_label_config("choices"))
    with pytest.raises(ResultError, match=words):
        control.label_of(result)


def test_pairwise_result_with_a_bad_selection_raises():
    control = parse_label_config(load_label_config("pairwise"))
    with pytest.raises(ResultError, match="'middle'"):
        control.label_of([{"from_name": "preference", "value": {"selected": "middle"}}])


@pytest.mark.parametrize("xml,words", [
    ("", "empty"),
    ("<View><Text", "not valid XML"),
    ("<View><Text name='p' value='$prompt'/><Text name='a' value='$response_a'/></View>", "response_b"),
    ("<View><Text name='a' value='$response_a'/><Text name='b' value='$response_b'/></View>",
     r"prompt: it must show \$prompt \(or \$prompt_messages\)"),
    ("<View><Text name='p' value='$prompt'/><Text name='a' value='$response_a'/><Text name='b' value='$response_b'/></View>",
     "exactly one <Pairwise> or <Choices>"),
    ("<View><Text name='p' value='$prompt'/><Text name='a' value='$response_a'/><Text name='b' value='$response_b'/>"
     "<Choices name='c' toName='p'><Choice value='A'/><Choice value='B'/><Choice value='Tie'/></Choices></View>", "exactly the two choices"),
    ("<View><Text name='p' value='$prompt'/><Text name='a' value='$response_a'/><Text name='b' value='$response_b'/>"
     "<Pairwise name='pw' toName='a'/></View>", "two comma-separated"),
])
def test_unusable_configs_raise_naming_the_problem(xml, words):
    with pytest.raises(LabelConfigError, match=words):
        parse_label_config(xml)


def test_choice_values_response_a_and_b_are_understood():
    xml = load_label_config("choices").replace('"A"', '"Response A"').replace('"B"', '"Response B"')
    control = parse_label_config(xml)
    assert (control.choice_a, control.choice_b) == ("Response A", "Response B")
    assert control.label_of(control.result(-1)) == -1


def test_unknown_config_name():
    with pytest.raises(LabelConfigError, match="pairwise, choices, chat"):
        load_label_config("ranking")


def test_task_data_problems_name_each_field():
    assert task_data_problems({"prompt": "p", "response_a": "a", "response_b": "b", "ai_label": "A", "pair_id": 3}) == []
    problems = task_data_problems({"prompt": 1, "response_a": "a", "ai_label": "c", "pair_id": [1]})
    assert problems == ["data.prompt must be a string, got int", "data.response_b is missing",
                        "data.ai_label must be 'a' or 'b', got 'c'", "data.pair_id must be a string or an integer, got list"]
    assert task_data_problems(None) == ["data must be an object, got NoneType"]


@pytest.mark.label_studio
@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_real_label_studio_accepts_the_config_and_its_results(label_studio, name):
    from ml_backend.label_studio_client import LabelStudioClient

    client = LabelStudioClient(label_studio["url"], label_studio["token"], retries=1)
    control = parse_label_config(load_label_config(name))
    project = client.create_project(f"rlthf-config-{name}-{uuid.uuid4().hex[:6]}", load_label_config(name))
    try:
        pid = project["id"]
        assert parse_label_config(client.get_project(pid)["label_config"]).kind == KIND[name]
        client.validate_label_config(pid, load_label_config(name))
        data = {"prompt": "p", "prompt_messages": CONVERSATION, "response_a": "a", "response_b": "b", "ai_label": "a"}
        (tid,) = client.import_tasks(pid, [{"data": data,
                                            "predictions": [{"result": control.result(1), "score": 0.5, "model_version": "v0"}]}])
        client.create_annotation(tid, control.result(-1))
        (task,) = client.list_tasks(pid)
        assert control.label_of(task["annotations"][0]["result"]) == -1
        assert control.label_of(task["predictions"][0]["result"]) == 1
        assert task["data"]["prompt_messages"] == CONVERSATION
    finally:
        client.delete_project(project["id"])
