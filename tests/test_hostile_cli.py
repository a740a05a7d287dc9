"""Bad options of any command: exit 2, one ``avsbench: error:`` line naming the option, no
traceback, nothing written (the CLI conventions of ``avsbench.cli.options``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from avsbench.data.resources import bundled_runs
from tests.hostile import assert_one_clear_error, run_cli_limited, tree_snapshot

RUN = str(bundled_runs()[0])


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["score", "-M", "0", RUN], ["--max-results", "0 is not in the range"]),
        (["score", "-m", "map", RUN], ["--measure", "'map'"]),
        (["score", "--format", "latex", RUN], ["--format", "'latex'"]),
        (["compare", "--confidence", "1.5", RUN], ["--confidence", "1.5"]),
        (["compare", "--bootstrap-samples", "0", RUN], ["--bootstrap-samples"]),
        (["leaderboard", "--format", "sample-eval"], ["--format"]),
        (["score", "--no-such-option", RUN], ["--no-such-option"]),
        (["collection", "info"], ["NAME"]),
    ],
)
def test_bad_option_is_one_clear_error(tmp_path: Path, args: list[str], needles: list[str]) -> None:
    before = tree_snapshot(tmp_path)
    done = run_cli_limited(args, cwd=tmp_path)
    line = assert_one_clear_error(done, *needles)
    assert "-h')" in line and done.stdout == ""
    assert tree_snapshot(tmp_path) == before
