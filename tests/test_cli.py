"""Every command's --help renders (argparse %-formats help text, so one stray percent sign breaks it)."""

import argparse

import pytest

from rlthf_selector.cli import build_parser, main


def _command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                paths.append(prefix + (name,))
                paths += _command_paths(sub, prefix + (name,))
    return paths


COMMANDS = _command_paths(build_parser())


def test_commands_are_found():
    assert ("demo",) in COMMANDS and ("simulate",) in COMMANDS and ("label-studio", "setup") in COMMANDS


@pytest.mark.parametrize("command", COMMANDS, ids=[" ".join(c) for c in COMMANDS])
def test_help_renders(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: rlthf " + " ".join(command))


def test_option_help_names_its_default_once(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    start = out.rindex("--out-of-fold OUT_OF_FOLD ")  # the options section, after the usage line
    entry = out[start:out.index("--seed", start)]
    assert entry.count("(default: 5; [loop] out_of_fold)") == 1 and entry.count("default") == 1


def test_simulate_help_lists_at_most_25_options(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    out = capsys.readouterr().out
    options = [line.split()[0] for line in out.splitlines() if line.startswith("  -")]
    assert len(options) <= 25, options
    assert "--config" in out and "--on-error" in out


def test_demo_writes_the_report_export_and_live_estimates(tmp_path, capsys):
    import json

    assert main(["demo", "--synthetic", "--out", str(tmp_path), "--n", "400", "--out-of-fold", "2"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["pairs"] == 400 and summary["human_labels"] == 24
    estimate = summary["live_estimates"]["ai_accuracy"]
    assert estimate["n"] >= 3 and estimate["lower"] <= estimate["value"] <= estimate["upper"]
    assert "## Live estimates" in (tmp_path / "report.md").read_text()
    assert len((tmp_path / "trl_preferences.jsonl").read_text().splitlines()) == 400
    out = capsys.readouterr().out  # two pool accuracies, each saying where it comes from
    assert "pool label accuracy, measured against the generator's gold labels: AI judge" in out
    assert "pool label accuracy, estimated from the human answers alone (no gold): " in out


def test_demo_runs_by_default_on_the_shipped_pandalm_slice_in_seconds(tmp_path, capsys):
    import json
    import time

    from rlthf_selector.demo_data import PANDALM_DEMO_DIR

    started = time.perf_counter()
    assert main(["demo", "--out", str(tmp_path)]) == 0
    assert time.perf_counter() - started < 30  # `make demo`'s promise; it takes a few seconds
    summary = json.loads((tmp_path / "summary.json").read_text())
    # 400 records shipped; human ties and GPT-3.5's ties and unparseable answers are left out
    assert summary["pairs"] == 307 and summary["ai_accuracy"] == 0.8208
    assert summary["final_accuracy"] > summary["ai_accuracy"]
    out = capsys.readouterr().out
    assert "307 pairs from the PandaLM test set slice (Apache-2.0" in out
    assert "pool label accuracy, measured against the human annotators' majority: AI judge 82.1% -> RLTHF" in out
    report = (tmp_path / "report.md").read_text()
    assert "Data: 307 pairs from the PandaLM test set slice" in report and "Command: `rlthf demo --out " in report
    rows = [json.loads(line) for line in (tmp_path / "trl_preferences.jsonl").read_text().splitlines()]
    assert len(rows) == 307 and all(r["id"].startswith("pandalm-") for r in rows)
    # shipped with its licence and where it comes from
    assert "Apache License" in (PANDALM_DEMO_DIR / "LICENSE").read_text()
    notice = (PANDALM_DEMO_DIR / "NOTICE.md").read_text()
    assert "https://github.com/WeOpenML/PandaLM" in notice and "Modified by the rlthf project" in notice


def test_the_backend_adds_its_commands_through_the_entry_point_group():
    from importlib.metadata import entry_points

    from rlthf_selector.cli import COMMAND_GROUP

    registered = {e.name: e.value for e in entry_points(group=COMMAND_GROUP)}
    assert registered.get("backend") == "ml_backend.cli:add_backend_parsers"
    assert {("serve",), ("label-studio", "setup"), ("export",)} <= set(COMMANDS)


def test_a_broken_command_group_is_named_and_the_others_still_work(monkeypatch, capsys):
    import importlib.metadata

    broken = importlib.metadata.EntryPoint(name="broken", value="no_such_module_rlthf:add", group="rlthf.commands")
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [broken])
    commands = _command_paths(build_parser())
    assert ("simulate",) in commands and ("serve",) not in commands
    assert "the 'broken' commands (no_such_module_rlthf:add) are left out: ModuleNotFoundError" in capsys.readouterr().err

