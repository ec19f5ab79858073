"""`--config FILE`: selector settings from a TOML file generated from the config dataclasses; the command line wins."""

from dataclasses import asdict
from pathlib import Path

import pytest

from rlthf_selector.cli import build_parser, main
from rlthf_selector.config import (
    SELECTOR_SECTIONS,
    config_markdown,
    config_toml,
    read_config_file,
    selector_configs,
)

REPO = Path(__file__).resolve().parents[1]


def _configs(argv):
    return selector_configs(build_parser().parse_args(argv))


def test_defaults_then_file_then_command_line(tmp_path):
    path = tmp_path / "rlthf.toml"
    path.write_text('[loop]\niterations = 2\nalpha = [5, 1.5]\n\n[rm]\nl2 = 0.5\n\n[selection]\nmethod = "paper"\n')
    configs = _configs(["demo", "--config", str(path), "--iterations", "4"])
    assert configs["loop_config"].iterations == 4  # the command line wins over the file
    assert configs["loop_config"].alpha == [5.0, 1.5] and configs["rm_config"].l2 == 0.5
    assert configs["selection_config"].method == "paper"
    assert configs["curve_config"] == _configs(["demo"])["curve_config"]  # not in the file: the default
    assert _configs(["simulate", "--dataset", "synthetic", "--config", str(path)])["loop_config"].iterations == 2


def test_the_written_default_file_reads_back_as_the_defaults(tmp_path, capsys):
    assert main(["config-docs", "--toml"]) == 0
    path = tmp_path / "defaults.toml"
    path.write_text(capsys.readouterr().out)
    from_file = read_config_file(path)
    assert set(from_file) == {section for section, _, _ in SELECTOR_SECTIONS}
    for section, cls, keyword in SELECTOR_SECTIONS:
        assert from_file[section] == asdict(cls())
    assert _configs(["demo", "--config", str(path)]) == _configs(["demo"])


@pytest.mark.parametrize("text, message", [
    ("[loop]\niteration = 2\n", r"unknown key 'iteration' in \[loop\]; its keys are iterations, "),
    ("[reward]\nl2 = 1.0\n", r"unknown section \[reward\]; the sections are \[loop\], \[curve\]"),
    ("[loop]\niterations = 2.5\n", r"\[loop\] iterations = 2.5: expected an integer"),
    ("[loop]\nhuman_budget = \"6%\"\n", r"\[loop\] human_budget = '6%': expected a number"),
    ("[loop]\nalpha = []\n", r"\[loop\] alpha = \[\]: expected a non-empty list of numbers"),
    ("[features]\nprogress = 1\n", r"\[features\] progress = 1: expected true or false"),
    ("[curve]\ndetector = \"knee\"\n", r"\[curve\] detector = 'knee': choose from 'kneed', 'derivative'"),
    ("loop = 2\n", r"loop must be a \[loop\] table of settings, got 2"),
    ("[loop\niterations = 2\n", r"not a valid TOML file"),
])
def test_bad_files_are_refused_naming_the_file_and_the_key(tmp_path, capsys, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        read_config_file(path)
    assert str(info.value).startswith(f"{path}: ")
    assert main(["demo", "--synthetic", "--config", str(path), "--out", str(tmp_path / "out")]) == 2
    assert f"rlthf demo: error: {path}: " in capsys.readouterr().err


def test_a_missing_file_is_named(tmp_path, capsys):
    assert main(["demo", "--config", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "out")]) == 2
    assert "nope.toml: no such file" in capsys.readouterr().err


def test_config_docs_lists_every_section_and_key(capsys):
    assert main(["config-docs"]) == 0
    out = capsys.readouterr().out
    for section, cls, _ in SELECTOR_SECTIONS:
        assert f"## `[{section}]`: `{cls.__name__}`" in out
        for key in asdict(cls()):
            assert f"| `{key}` |" in out


def test_docs_config_md_is_current():
    """docs/config.md is `rlthf config-docs > docs/config.md`; regenerate it after changing a config field."""
    assert (REPO / "docs" / "config.md").read_text(encoding="utf-8") == config_markdown() + "\n"


def test_the_default_file_stays_readable():
    assert config_toml().startswith("# rlthf selector settings")
