"""Run files scored by several processes (``score --jobs``, ``score_runs(jobs=...)``): same results, same errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from avsbench.errors import AvsbenchError, InputFormatError
from avsbench.eval.sample_eval import format_sample_eval
from avsbench.eval.scoring import score_runs
from avsbench.eval.workers import AUTO_MIN_ITEMS, jobs_for, map_in_workers

REPO = Path(__file__).resolve().parent.parent
GOLDEN = REPO / "tests" / "golden" / "sample_eval"
PARENT = os.getpid()


def _square_noting_process(x: int) -> tuple[int, bool]:
    return x * x, os.getpid() == PARENT


def test_results_keep_the_order_of_the_items_and_workers_do_share_the_work() -> None:
    counted: list[int] = []
    out = map_in_workers(_square_noting_process, list(range(10)), jobs=3, on_done=counted.append)
    assert [v for v, _ in out] == [x * x for x in range(10)]
    in_parent = [mine for _, mine in out]
    assert in_parent[:3] == [True] * 3 and not any(in_parent[3:])  # the caller's share first, the rest forked
    assert sum(counted) == 10


def _fail_on(bad: set[int]):
    def work(x: int) -> int:
        if x in bad:
            raise InputFormatError(f"item {x} is bad", path=f"run{x}.txt", line=x)
        return x

    return work


@pytest.mark.parametrize("bad", [{1}, {7}, {4, 8}, {2, 9}])
def test_the_error_raised_is_the_first_failing_items_as_in_a_plain_loop(bad: set[int]) -> None:
    with pytest.raises(InputFormatError) as raised:
        map_in_workers(_fail_on(bad), list(range(10)), jobs=3)
    assert f"item {min(bad)} is bad" in str(raised.value) and f"run{min(bad)}.txt:{min(bad)}" in str(raised.value)


def _die_in_worker(x: int) -> int:
    if os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def test_a_worker_killed_is_a_clear_error_not_a_missing_result() -> None:
    with pytest.raises(AvsbenchError, match="killed by signal 9"):
        map_in_workers(_die_in_worker, [1, 2, 3, 4], jobs=2)


def test_automatic_jobs_only_for_several_files() -> None:
    assert jobs_for(0, 1) == 1 and jobs_for(0, AUTO_MIN_ITEMS - 1) == 1
    assert 1 <= jobs_for(0, 40) <= (os.cpu_count() or 1)
    assert jobs_for(3, 1) == 3 and jobs_for(1, 40) == 1  # what the user asked for


def _golden_cases() -> list[tuple[Path, Path, bytes]]:
    cases = []
    for line in (GOLDEN / "cases.tsv").read_text().splitlines()[1:]:
        _, qrels, run, expected_q, _ = line.split("\t")
        if qrels.startswith("qrels/v3c1_19"):
            cases.append((GOLDEN / qrels, GOLDEN / run, (GOLDEN / expected_q).read_bytes()))
    return cases


def test_score_runs_in_three_processes_gives_every_golden_byte() -> None:
    cases = _golden_cases()
    assert len(cases) >= 5
    qrels = cases[0][0]
    runs = [run for _, run, _ in cases]
    alone = score_runs(runs, qrels=qrels)
    shared = score_runs(runs, qrels=qrels, jobs=3)
    assert [s.name for s in shared] == [run.name for run in runs]
    for (_, _, expected), one, many in zip(cases, alone, shared):
        assert format_sample_eval(many.result, True).encode() == format_sample_eval(one.result, True).encode()
        assert format_sample_eval(many.result, True).encode() == expected
        assert many.warnings == one.warnings


def _cli(args: list[str], *, click: bool) -> subprocess.CompletedProcess[bytes]:
    code = "from avsbench.cli import main; main()" if click else "from avsbench.entry import main; main()"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, timeout=120, check=False)


@pytest.mark.parametrize("jobs", [["--jobs", "2"], ["-j", "3"], ["--jobs=1"], []])
def test_cli_jobs_print_the_same_bytes_on_both_entries(jobs: list[str]) -> None:
    cases = _golden_cases()
    args = ["score", "--format", "sample-eval", "-q", *jobs, "--qrels", str(cases[0][0]), *(str(c[1]) for c in cases)]
    fast, slow = _cli(args, click=False), _cli(args, click=True)
    assert fast.returncode == slow.returncode == 0, fast.stderr
    assert fast.stdout == slow.stdout == b"".join(expected for _, _, expected in cases)
    assert fast.stderr == slow.stderr


def test_a_bad_file_among_many_stops_with_its_name_and_line(tmp_path: Path) -> None:
    cases = _golden_cases()
    bad = tmp_path / "bad.run"
    bad.write_text("1611 Q0 shot1_1 1 0.5 r\n1611 Q0 shot1_2 2 nope r\n")
    runs = [str(c[1]) for c in cases]
    args = ["score", "--format", "sample-eval", "-j", "2", "--qrels", str(cases[0][0]), *runs, str(bad)]
    fast, slow = _cli(args, click=False), _cli(args, click=True)
    assert fast.returncode == slow.returncode == 2
    assert fast.stdout == slow.stdout == b""
    assert b"bad.run:2" in fast.stderr and fast.stderr == slow.stderr


def test_jobs_must_be_a_count() -> None:
    args = ["score", "--format", "sample-eval", "--jobs", "two", "--qrels", "q", "r"]
    done = _cli(args, click=False)
    assert done.returncode == 2 and b"--jobs" in done.stderr


def test_no_fork_while_another_thread_runs() -> None:
    import threading

    from avsbench.eval.workers import fork_is_safe

    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not fork_is_safe()
        out = map_in_workers(_square_noting_process, list(range(6)), jobs=3)
        assert [v for v, _ in out] == [x * x for x in range(6)]
        assert all(mine for _, mine in out)  # all done in this process
    finally:
        release.set()
        other.join()
    assert fork_is_safe()
