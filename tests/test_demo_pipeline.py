"""The README's main command in its quick form: the whole pipeline on the synthetic demo."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data.runs import RunFile
from avsbench.data.submission import validate_submission
from avsbench.data.topics import get_year


@pytest.mark.slow
def test_quick_demo_runs_the_whole_pipeline(tmp_path):
    root, out = tmp_path / "demo-root", tmp_path / "out"
    result = CliRunner().invoke(
        main, ["demo", "--quick", "--rootpath", str(root), "--out", str(out)], env={"COLUMNS": "250"}
    )
    assert result.exit_code == 0, result.output
    text = result.output

    # everything synthetic is labelled so; the real 2021 runs get NIST's numbers
    assert "SYNTHETIC" in text and (root / "SYNTHETIC.md").is_file()
    assert "0.3430" in text and "0.3490" in text

    # five models trained and ranked: LAFF, mean fusion, one per video feature
    runs = sorted(p.name for p in (out / "runs").glob("*.tv19.txt"))
    assert runs == sorted(
        [
            "LAFF.tv19.txt",
            "MeanFusion.tv19.txt",
            "Single_demo_clip512.tv19.txt",
            "Single_demo_partial768.tv19.txt",
            "Single_demo_noisy1024.tv19.txt",
        ]
    )
    laff = RunFile.read(out / "runs" / "LAFF.tv19.txt")
    assert len(laff.topics) == len(get_year(2019).topics())
    assert all(len(lines.shots) == 1000 for lines in laff.topics.values())

    # the official XML is written, valid, and scores exactly like the TREC run
    xml = out / "runs" / "F_M_C_D_AVSBENCHDEMO.19_1"
    assert validate_submission(xml, year=get_year(2019)) == []
    assert "valid); scoring it gives the TREC run's numbers: yes" in " ".join(text.split())

    # LAFF's attention orders the demo features by their known quality
    assert "matches the known quality order" in " ".join(text.split())
    assert (out / "demo_compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
