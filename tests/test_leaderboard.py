"""The bundled leaderboard: only sourced V/C numbers, validated on load, CLI formats."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.errors import ConfigError, InputFormatError
from avsbench.eval.leaderboard import (
    default_leaderboard_path,
    leaderboard_entries,
    load_leaderboard,
    reference_entries,
)


def test_every_bundled_number_is_sourced_and_verified_or_computed() -> None:
    entries = load_leaderboard()
    assert len(entries) >= 10
    for e in entries:
        assert e.confidence in {"V", "C"}
        assert len(e.source) > 20
        assert 0.0 < e.value < 1.0
        assert e.metric == "infAP"


def test_known_published_values() -> None:
    by_key = {(e.year, e.system, e.run): e.value for e in load_leaderboard()}
    assert by_key[("2021", "RUCMM", "test_run.tv21.RUCMM.txt")] == 0.3430
    assert by_key[("2021", "GodSpeed", "F_M_C_D_GodSpeed.21_1")] == 0.3490
    assert by_key[("2019", "VIREO-EURECOM", "F_M_C_D_VIREO.19_2")] == 0.067
    assert by_key[("2016", "W2VV++ (released model)", "w2vvpp_resnext101_resnet152_subspace_v190916")] == 0.162
    assert by_key[("2019", "SEA {BoW, w2v, bi-GRU}", None)] == 0.167


def test_year_filter_and_order() -> None:
    entries = leaderboard_entries("tv16")
    assert entries and {e.year for e in entries} == {"2016"}
    values = [e.value for e in entries]
    assert values == sorted(values, reverse=True)
    assert leaderboard_entries(2020) == []
    with pytest.raises(ConfigError):
        leaderboard_entries(2031)


def test_reference_rows_keep_official_and_best_of_each_model_family() -> None:
    rows = reference_entries(2016)
    systems = [r.system for r in rows]
    assert "Waseda" in systems and "ITI-CERTH (MKLab)" in systems
    families = [s.split()[0] for r, s in zip(rows, systems) if r.kind == "retrospective"]
    assert sorted(families) == ["SEA", "W2VV++"]
    sea_best = max(e.value for e in leaderboard_entries(2016) if e.system.startswith("SEA"))
    assert any(r.system.startswith("SEA") and r.value == sea_best for r in rows)


def _write(tmp_path: Path, entries: list[dict]) -> Path:
    path = tmp_path / "lb.json"
    path.write_text(json.dumps({"format": "avsbench-leaderboard/1", "entries": entries}))
    return path


def _entry(**changes: object) -> dict:
    entry = {
        "year": "2019",
        "system": "X",
        "run": None,
        "kind": "official",
        "category": "fully automatic",
        "metric": "infAP",
        "value": 0.1,
        "confidence": "V",
        "source": "somewhere public",
    }
    entry.update(changes)
    return entry


def test_remembered_numbers_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="confidence 'R'"):
        load_leaderboard(_write(tmp_path, [_entry(confidence="R")]))


@pytest.mark.parametrize("bad", [{"source": ""}, {"value": "0.1"}, {"value": 3.0}, {"kind": "rumour"}, {"run": 5}])
def test_malformed_entries_are_rejected(tmp_path: Path, bad: dict) -> None:
    with pytest.raises(InputFormatError, match="entry 0"):
        load_leaderboard(_write(tmp_path, [_entry(**bad)]))


def test_not_a_leaderboard(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(InputFormatError, match="not valid JSON"):
        load_leaderboard(path)
    path.write_text('{"entries": []}')
    with pytest.raises(InputFormatError, match="not an avsbench leaderboard"):
        load_leaderboard(path)


def test_bundled_file_is_package_data() -> None:
    assert default_leaderboard_path().is_file()


def test_cli_formats() -> None:
    runner = CliRunner()
    table = runner.invoke(main, ["leaderboard", "--year", "2021"])
    assert table.exit_code == 0, table.output
    assert "0.3490" in table.output and "GodSpeed" in table.output

    as_json = runner.invoke(main, ["leaderboard", "--format", "json"])
    assert as_json.exit_code == 0
    records = json.loads(as_json.output)
    assert len(records) == len(load_leaderboard())
    assert all(r["source"] and r["confidence"] in {"V", "C"} for r in records)

    as_csv = runner.invoke(main, ["leaderboard", "--year", "2019", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    assert {r["year"] for r in rows} == {"2019"} and len(rows) == len(leaderboard_entries(2019))

    md = runner.invoke(main, ["leaderboard", "--year", "2016", "--format", "markdown"])
    assert any(line.startswith("| year | system |") for line in md.output.splitlines())

    latex = runner.invoke(main, ["leaderboard", "--year", "2016", "--format", "latex"])
    assert "\\begin{tabular}" in latex.output and "W2VV++" in latex.output

    bad = runner.invoke(main, ["leaderboard", "--year", "1999"])
    assert bad.exit_code == 2 and "unknown AVS year" in bad.output


def test_cli_year_without_entries() -> None:
    result = CliRunner().invoke(main, ["leaderboard", "--year", "2020"])
    assert result.exit_code == 0 and "no published result for 2020" in result.output
    as_json = CliRunner().invoke(main, ["leaderboard", "--year", "2020", "--format", "json"])
    assert json.loads(as_json.stdout) == []
