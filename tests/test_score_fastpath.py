"""The click-free entry of ``score --format sample-eval --qrels Q RUN...`` (issue 12): same bytes as click."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from avsbench.data.resources import resource_path
from avsbench.entry import parse_fast_score

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "sample_eval"
QRELS = resource_path("qrels", "avs.qrels.tv21")
RUCMM = resource_path("runs", "test_run.tv21.RUCMM.txt")


def _run(args: list[str], *, click: bool, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    code = "from avsbench.cli import main; main()" if click else "from avsbench.entry import main; main()"
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        capture_output=True,
        input=stdin,
        check=False,
        cwd=REPO,
        timeout=120,
    )


def test_only_the_plain_sample_eval_call_is_taken() -> None:
    assert parse_fast_score(["score", "--format", "sample-eval", "--qrels", "q", "r"]) is not None
    assert parse_fast_score(["score", "-q", "--format=sample-eval", "--qrels=q", "--lenient", "r", "s"])["runs"] == [
        "r",
        "s",
    ]
    for argv in (
        ["score", "--qrels", "q", "r"],
        ["score", "--format", "json", "--qrels", "q", "r"],
        ["score", "--format", "sample-eval", "r"],
        ["score", "--format", "sample-eval", "--qrels", "q"],
        ["score", "--format", "sample-eval", "--qrels", "q", "--year", "2021", "r"],
        ["score", "--help"],
        ["compare", "--format", "sample-eval", "--qrels", "q", "r"],
        [],
    ):
        assert parse_fast_score(argv) is None, argv


@pytest.mark.parametrize("case", ["iacc16_missing_and_foreign_topics", "v3c1_19_duplicates_around_1000", "toy_spec"])
def test_fast_and_click_paths_print_the_same_bytes(case: str) -> None:
    qrels = next(GOLDEN.glob("qrels/*.qrels")) if case != "toy_spec" else GOLDEN / "qrels" / "toy.qrels"
    qrels = {
        "iacc16_missing_and_foreign_topics": GOLDEN / "qrels/iacc16.qrels",
        "v3c1_19_duplicates_around_1000": GOLDEN / "qrels/v3c1_19.qrels",
    }.get(case, qrels)
    args = ["score", "--format", "sample-eval", "-q", "--qrels", str(qrels), str(GOLDEN / "runs" / f"{case}.run")]
    fast, slow = _run(args, click=False), _run(args, click=True)
    assert fast.returncode == slow.returncode == 0
    assert fast.stdout == slow.stdout == (GOLDEN / "expected" / f"{case}.q.txt").read_bytes()
    assert fast.stderr == slow.stderr


def test_fast_path_errors_like_click(tmp_path: Path) -> None:
    bad = tmp_path / "bad.run"
    bad.write_text("1661 Q0 shot1_1 1 abc r\n")
    args = ["score", "--format", "sample-eval", "--qrels", str(QRELS), str(bad)]
    fast, slow = _run(args, click=False), _run(args, click=True)
    assert fast.returncode == slow.returncode == 2
    assert fast.stderr == slow.stderr and b"bad.run:1" in fast.stderr and b"Traceback" not in fast.stderr


def test_fast_path_reads_standard_input() -> None:
    args = ["score", "--format", "sample-eval", "--qrels", str(QRELS), "-"]
    done = _run(args, click=False, stdin=RUCMM.read_bytes())
    assert done.returncode == 0, done.stderr
    assert done.stdout == (GOLDEN / "expected" / "real_tv21_rucmm.txt").read_bytes()


def test_sample_eval_path_imports_no_click_rich_pandas_or_scipy() -> None:
    argv = ["avsbench", "score", "--format", "sample-eval", "--qrels", str(QRELS), str(RUCMM)]
    code = (
        f"import sys; sys.argv = {argv!r}\n"
        "from avsbench.entry import fast_score_status, parse_fast_score\n"
        "assert fast_score_status(parse_fast_score(sys.argv[1:])) == 0\n"
        "bad = [m for m in ('click', 'rich', 'pandas', 'scipy', 'torch') if m in sys.modules]\n"
        "sys.stderr.write('LOADED ' + ','.join(bad))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().endswith("LOADED"), done.stderr
