"""The hostile-suite helpers themselves: a missing run file is one clear error, nothing written."""

from __future__ import annotations

from pathlib import Path

from hostile import assert_one_clear_error, run_cli_limited, tree_snapshot


def test_missing_run_is_one_clear_error(tmp_path: Path) -> None:
    before = tree_snapshot(tmp_path)
    done = run_cli_limited(["score", str(tmp_path / "nope.txt")], cwd=tmp_path)
    assert_one_clear_error(done, "nope.txt")
    assert tree_snapshot(tmp_path) == before
