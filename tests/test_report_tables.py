"""One table abstraction in ``avsbench.report`` (issue 13, item 6): score tables, comparison tables
and the leaderboard are all :class:`avsbench.report.tables.ReportTable` and render the same ways."""

from __future__ import annotations

import math

import pandas as pd

import avsbench.report.compare_report as compare_report
from avsbench.data.resources import bundled_runs
from avsbench.eval.leaderboard import leaderboard_entries
from avsbench.eval.scoring import score_runs
from avsbench.report.leaderboard import leaderboard_table
from avsbench.report.score_output import score_tables
from avsbench.report.tables import Column, ReportTable, Row, latex_tables, markdown_tables, tables_text


def test_score_tables_are_report_tables_and_render_in_every_table_format() -> None:
    tables = score_tables(score_runs([str(p) for p in bundled_runs()]), measures=["infAP", "num_ret"])
    assert len(tables) == 1 and isinstance(tables[0], ReportTable)
    markdown = markdown_tables(tables)
    assert "| test_run.tv21.RUCMM.txt | 2021 | 0.3430 | 20000 | 20 | 0 |" in markdown
    assert "\\begin{tabular}{llrrrr}" in latex_tables(tables)
    assert "0.3430" in tables_text(tables, width=100)


def test_leaderboard_lives_in_its_own_module() -> None:
    table = leaderboard_table(leaderboard_entries(2021))
    assert isinstance(table, ReportTable) and table.headers[0] == "year"
    assert not hasattr(compare_report, "leaderboard_table") and not hasattr(compare_report, "render_leaderboard")
    assert compare_report.ReportTable is ReportTable  # one class, not a second one beside tables.py's


def test_from_frame_formats_numbers_and_missing_values() -> None:
    frame = pd.DataFrame({"run": ["a", "b"], "score": [0.5, math.nan], "n": pd.array([3, None], dtype="Int64")})
    table = ReportTable.from_frame("t", frame, {"score": ".2f", "n": "d"})
    assert table.text_rows() == [["a", "0.50", "3"], ["b", "–", "–"]]
    assert [c.numeric for c in table.columns] == [False, True, True]


def test_detail_rows_and_blank_missing_cells() -> None:
    columns = [Column("name"), Column("v", ".1f", missing="")]
    table = ReportTable("", columns, [Row({"name": "x", "v": 1.25}), Row({"name": "y"}, detail=True)])
    assert table.text_rows() == [["x", "1.2"], ["y", ""]]
