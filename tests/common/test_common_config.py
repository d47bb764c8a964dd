"""common.config.read_ini: typed values, section order, the seeds' own files and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from common.cli import MissingInputError, UsageError
from common.config import parse_value, read_ini, sections

REPO = Path(__file__).resolve().parents[2]

INI = """\
[DEFAULT]
lr = 0.1
epochs = 200
name = plain text
flag = False

[SMALL]
epochs = 5
widths = [16, 32]

[FAST]
lr = 1e-2
tag = 'quoted'
"""


@pytest.fixture
def ini(tmp_path: Path) -> Path:
    path = tmp_path / "settings.ini"
    path.write_text(INI)
    return path


@pytest.mark.parametrize(
    "text, value",
    [("3", 3), ("-2.5", -2.5), ("1e-3", 1e-3), ("None", None), ("null", None), ("true", True), ("False", False),
     ("[1, 2]", [1, 2]), ("(0.9, 0.999)", (0.9, 0.999)), ("'a b'", "a b"), ("kensls", "kensls"),
     ("cycle ", "cycle"), ("mnist/train", "mnist/train"), ("", "")],
)  # fmt: skip
def test_parse_value_literals_else_strings(text: str, value: object) -> None:
    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


def test_default_then_sections_in_order(ini: Path) -> None:
    assert read_ini(ini) == {"lr": 0.1, "epochs": 200, "name": "plain text", "flag": False}
    assert read_ini(ini, "SMALL") == {"lr": 0.1, "epochs": 5, "name": "plain text", "flag": False, "widths": [16, 32]}
    merged = read_ini(ini, ["SMALL", "FAST"])
    assert merged["epochs"] == 5 and merged["lr"] == 0.01 and merged["tag"] == "quoted"
    # a later section does not re-apply [DEFAULT] over an earlier one
    assert read_ini(ini, ["FAST", "SMALL"])["lr"] == 0.01
    assert read_ini(ini, ["SMALL", "GPU"], missing_ok=True)["epochs"] == 5
    assert sections(ini) == ["SMALL", "FAST"]


def test_seed_files_read_through_the_same_loader() -> None:
    """line_search/config.json holds INI text (the seed's name); forward_grad's defaults.ini: a section per axis."""
    ls = read_ini(REPO / "line_search" / "config.json")
    assert ls["epochs"] == 15 and ls["c"] == 0.5 and ls["checkpoint"] is None and ls["speed_up"] is False
    assert ls["optim"] == "kensls"
    fg = read_ini(REPO / "forward_grad" / "nn_training" / "configs" / "defaults.ini", ["MNIST", "FROG", "FC"])
    assert fg["batch_size"] == 64 and fg["aggregation"] == "frog" and fg["model_hidden_size"] == 1024
    assert fg["initial_lr"] == 0.1


def test_missing_file_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(MissingInputError, match=r"config file not found: .*nope\.ini"):
        read_ini(tmp_path / "nope.ini")


def test_missing_section_names_file_section_and_choices(ini: Path) -> None:
    with pytest.raises(UsageError) as info:
        read_ini(ini, ["SMALL", "GPU"])
    message = str(info.value)
    assert str(ini) in message and "[GPU]" in message and "[SMALL], [FAST]" in message
    assert not isinstance(info.value, MissingInputError)


@pytest.mark.parametrize(
    "text, needle",
    [
        ('{"DEFAULT": {"lr": 0.1}}', "before any [section] header"),
        ("[A]\nx = 1\n[A]\ny = 2\n", "section [A] appears twice"),
        ("[A]\nx = 1\nx = 2\n", "key 'x' appears twice in [A]"),
    ],
    ids=["json", "duplicate-section", "duplicate-key"],
)
def test_malformed_files_are_usage_errors_naming_the_file(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "bad.ini"
    path.write_text(text)
    with pytest.raises(UsageError) as info:
        read_ini(path)
    assert str(path) in str(info.value) and needle in str(info.value)
    assert len(str(info.value).splitlines()) == 1
