"""Readable console output (issue 13, item 5): tables fit the terminal ($COLUMNS) without splitting
a number, long run names become short labels with a legend, tables too wide are split into parts
that repeat their key columns; machine formats do not depend on the width."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data.resources import bundled_runs
from avsbench.eval.leaderboard import leaderboard_entries
from avsbench.report.tables import Column, ReportTable, Row, fit_table

NUMBER = re.compile(r"(?<![\w.])[+-]?\d+\.\d{4}(?![\w.])")
RUNS = [str(p) for p in bundled_runs()]


def invoke(width: int, *args: str) -> str:
    result = CliRunner(env={"COLUMNS": str(width)}).invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def assert_fits(text: str, width: int) -> None:
    too_wide = [line for line in text.splitlines() if len(line) > width]
    assert not too_wide, too_wide[:3]


@pytest.fixture(scope="module")
def six_runs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Six runs with long names (copies of the two bundled 2021 runs)."""
    folder = tmp_path_factory.mktemp("six")
    paths = []
    for i in range(6):
        path = folder / f"team_{i + 1}_F_M_C_D_long_descriptive_run_name.txt"
        shutil.copy(RUNS[i % 2], path)
        paths.append(str(path))
    return paths


def _per_topic_lines(text: str) -> list[str]:
    section = text[text.index("infAP per topic") :]
    return [line for line in section.splitlines() if line.startswith(" 2021 ")]


@pytest.mark.parametrize("width", [80, 120])
def test_compare_of_six_runs_fits_and_keeps_numbers_whole(six_runs: list[str], width: int) -> None:
    text = invoke(width, "compare", *six_runs, "--permutations", "100", "--bootstrap-samples", "100")
    assert_fits(text, width)
    rows = _per_topic_lines(text)
    numbers = [len(NUMBER.findall(line)) for line in rows]
    if width == 120:  # one table: 6 runs and 5 differences on each topic's first line
        assert len(rows) == 20 and set(numbers) == {11}
        assert "infAP per topic (1/2)" not in text
    else:  # two parts, each repeating year, topic and text
        assert len(rows) == 40 and sorted(set(numbers)) == [5, 6]
        assert "infAP per topic (1/2)" in text and "infAP per topic (2/2)" in text
    assert " R1 " in text and "Δ R2" in text
    legend = " ".join(text.split())
    for i, path in enumerate(six_runs, 1):
        assert f"R{i} = {Path(path).name}" in legend


def test_compare_with_room_keeps_the_run_names(six_runs: list[str]) -> None:
    text = invoke(400, "compare", *six_runs[:2], "--permutations", "100", "--bootstrap-samples", "100")
    assert f"Δ {Path(six_runs[1]).name}" in text and "R1 =" not in text


@pytest.mark.parametrize("width", [80, 120])
def test_leaderboard_fits_the_terminal(width: int) -> None:
    text = invoke(width, "leaderboard")
    assert_fits(text, width)
    entry_lines = [line for line in text.splitlines() if re.match(r" 20\d\d ", line)]
    assert len(entry_lines) == len(leaderboard_entries())
    assert [NUMBER.findall(line) for line in entry_lines] == [[f"{e.value:.4f}"] for e in leaderboard_entries()]


@pytest.mark.parametrize("width", [80, 120])
def test_per_topic_scores_fit_the_terminal(width: int) -> None:
    text = invoke(width, "score", "-q", *RUNS)
    assert_fits(text, width)
    topic_lines = [line for line in text.splitlines() if re.match(r"\s+16\d\d ", line)]
    assert len(topic_lines) == 40 and all(len(NUMBER.findall(line)) == 4 for line in topic_lines)


@pytest.mark.parametrize(
    "args",
    [
        ["compare", "--format", "csv"],
        ["compare", "--format", "json"],
        ["score", "--format", "tsv", "-q"],
        ["score", "--format", "trec_eval", "-q"],
    ],
)
def test_machine_formats_do_not_depend_on_the_width(args: list[str]) -> None:
    extra = ["--permutations", "100", "--bootstrap-samples", "100"] if args[0] == "compare" else []
    assert invoke(60, *args, *extra, *RUNS) == invoke(300, *args, *extra, *RUNS)


def test_fit_table_moves_constant_text_into_the_title_then_splits() -> None:
    columns = [Column("name"), Column("unit"), *(Column(f"value {i}", ".4f") for i in range(8))]
    rows = [
        Row({"name": f"row {r}", "unit": "infAP", **{f"value {i}": r + i / 10 for i in range(8)}}) for r in range(3)
    ]
    table = ReportTable("T", columns, rows, ["note"])
    assert [part.table.title for part in fit_table(table, 200)] == ["T"]
    parts = fit_table(table, 60)
    assert len(parts) > 1 and all(p.table.columns[0].header == "name" for p in parts)
    assert parts[0].table.title == f"T (unit infAP) (1/{len(parts)})"
    assert sum(len(p.table.columns) - 1 for p in parts) == 8  # every value column once; "unit" went to the title
    assert parts[-1].table.notes == ["note"] and parts[0].table.notes == []


def test_narrow_score_table_splits_and_keeps_headers_whole() -> None:
    measures = ["infAP", "infNDCG", "iP10", "iP100", "iP1000", "num_ret"]
    text = invoke(50, "score", *(a for m in measures for a in ("-m", m)), *RUNS)
    assert_fits(text, 50)
    assert "AVS 2021 (1/" in text
    headers = [line.split() for line in text.splitlines() if line.startswith(" run ")]
    assert [h for line in headers for h in line if h not in ("run", "year")] == [*measures, "scored", "missing"]
