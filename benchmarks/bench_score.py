"""Scorer speed and memory, every row of issue 12's table, measured side by side in one process.

Rows (each command run as its own process, wall clock, minimum over ``--repeats``; peak memory is
the child's own maximum RSS from ``wait4``; the package runs from compiled bytecode, as installed,
even when ``PYTHONDONTWRITEBYTECODE`` is set: it is compiled first, into the ignored ``__pycache__``):

1. one run, one process: ``avsbench score --format sample-eval --qrels Q RUN`` (the real 2021
   qrels and RUCMM run; qrels cache warm, as in a shell loop) against ``perl sample_eval.pl Q RUN``;
2. 30 runs in one call (30 generated runs shaped like real ones; ``score`` spreads them over the CPU
   cores, as it does for 4 or more files) against 30 Perl processes, all 30 outputs compared;
3. a huge run and qrels (generated; default 10 M and 5 M lines, ``--sizes RUN,QRELS`` for smaller),
   cold (an empty qrels cache: the qrels are parsed, by a second process while the run is read), against Perl;
4. a large TRECVID XML submission (generated, ``--xml-items``): ``score`` and ``validate``, memory.

The baseline is NIST's script when ``--perl-script PATH`` is given (it is not shipped), else the
plain scalar reading of the spec (tests/sample_eval_reference.py, one Python loop per rank, the
approach before the bulk reader) run as a process. Outputs are compared byte for byte with
Perl's where Perl runs. Generated data is kept in ``--data-dir`` and reused.

    python benchmarks/bench_score.py --perl-script /tmp/sample_eval.pl [--sizes 10000000,5000000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
QRELS_2021 = REPO / "avsbench" / "resources" / "qrels" / "avs.qrels.tv21"
RUN_2021 = REPO / "avsbench" / "resources" / "runs" / "test_run.tv21.RUCMM.txt"
BASELINE = """import sys
sys.path.insert(0, {tests!r})
from sample_eval_reference import reference_evaluate
qrels = open(sys.argv[1]).read()
for run in sys.argv[2:]:
    reference_evaluate(qrels, open(run).read())
"""


def timed(cmd: list[str], env: dict[str, str], stdout=subprocess.DEVNULL) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit status) of one child process."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, child.returncode


def best(cmds: list[list[str]], env: dict[str, str], repeats: int) -> tuple[float, float]:
    """Minimum total seconds over repeats of running ``cmds`` one after the other, and the peak RSS."""
    times, peak = [], 0.0
    for _ in range(repeats):
        total = 0.0
        for cmd in cmds:
            seconds, rss, status = timed(cmd, env)
            if status != 0:
                raise SystemExit(f"failed ({status}): {' '.join(cmd)}")
            total += seconds
            peak = max(peak, rss)
        times.append(total)
    return min(times), peak


class Baseline:
    """How the comparison scorer is run: Perl's sample_eval.pl, or the scalar reference in Python."""

    def __init__(self, perl_script: str | None, scratch: Path) -> None:
        self.perl = perl_script
        self.name = "Perl sample_eval.pl" if perl_script else "scalar reference (previous approach)"
        self.script = scratch / "baseline.py"
        self.script.write_text(BASELINE.format(tests=str(REPO / "tests")))

    def commands(self, qrels: Path, runs: list[Path]) -> list[list[str]]:
        if self.perl:
            return [["perl", self.perl, str(qrels), str(run)] for run in runs]
        return [[sys.executable, str(self.script), str(qrels), *map(str, runs)]]


def ours(qrels: Path, runs: list[Path]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "avsbench",
        "score",
        "--format",
        "sample-eval",
        "--qrels",
        str(qrels),
        *map(str, runs),
    ]


def same_output(qrels: Path, runs: list[Path], baseline: Baseline, env: dict[str, str]) -> str:
    """Our one call's output against Perl's outputs of each run, one after the other, byte for byte."""
    if not baseline.perl:
        return "not compared"
    mine = subprocess.run(ours(qrels, runs), env=env, capture_output=True, check=True).stdout
    theirs = b"".join(
        subprocess.run(["perl", baseline.perl, str(qrels), str(run)], capture_output=True, check=True).stdout
        for run in runs
    )
    return "identical output" if mine == theirs else "OUTPUT DIFFERS"


def huge_baseline(
    baseline: Baseline, qrels: Path, run: Path, env: dict[str, str], scratch: Path
) -> tuple[tuple[float, float], str]:
    """Row 3's baseline, run once (Perl takes minutes): its time and peak RSS, and whether our output matches its."""
    if not baseline.perl:
        return best(baseline.commands(qrels, [run]), env, 1), "not compared"
    captured = scratch / "perl_row3.txt"
    with open(captured, "wb") as fh:
        seconds, rss, status = timed(baseline.commands(qrels, [run])[0], env, stdout=fh)
    if status != 0:
        raise SystemExit(f"perl failed ({status})")
    mine = subprocess.run(ours(qrels, [run]), env=env, capture_output=True, check=True).stdout
    return (seconds, rss), "identical output" if mine == captured.read_bytes() else "OUTPUT DIFFERS"


def generated_runs(folder: Path, count: int, seed: int) -> list[Path]:
    """Runs shaped like real ones on the 2021 qrels: 20 topics x 1000 shots, ~60% from the pool, tied blocks."""
    rng = np.random.default_rng(seed)
    pool: dict[str, list[str]] = {}
    for line in QRELS_2021.read_text().splitlines():
        topic, _, shot, _, _ = line.split()
        pool.setdefault(topic, []).append(shot)
    paths = []
    for i in range(count):
        path = folder / f"gen{i:02d}.run"
        paths.append(path)
        if path.exists():
            continue
        lines = []
        for topic, shots in pool.items():
            chosen = set(rng.choice(shots, size=min(600, len(shots)), replace=False).tolist())
            while len(chosen) < 1000:
                chosen.add(f"shot{rng.integers(1, 7476):05d}_{rng.integers(1, 400)}")
            ordered = rng.permutation(sorted(chosen)).tolist()
            lines.extend(f"{topic} Q0 {s} {r} {10000 - r // (1 + i % 4)} gen{i}\n" for r, s in enumerate(ordered, 1))
        path.write_text("".join(lines))
    return paths


def huge_files(folder: Path, run_lines: int, qrels_lines: int, seed: int) -> tuple[Path, Path]:
    """A qrels of ``qrels_lines`` (50 topics, strata 1-3) and a run of ``run_lines`` over the same topics."""
    qrels_path = folder / f"huge_{qrels_lines}.qrels"
    run_path = folder / f"huge_{run_lines}.run"
    rng = np.random.default_rng(seed)
    topics = 50
    shots_per_video = 40
    if not qrels_path.exists():
        per_topic = qrels_lines // topics
        with open(qrels_path, "w") as fh:
            for t in range(topics):
                ids = rng.choice(2_000_000, size=per_topic, replace=False)
                strata = 1 + (np.arange(per_topic) * 3 // per_topic)
                judged = rng.choice([-1, 0, 1], size=per_topic, p=[0.5, 0.35, 0.15])
                fh.write(
                    "".join(
                        f"{1700 + t} 0 shot{v // shots_per_video:05d}_{v % shots_per_video + 1} {s} {j}\n"
                        for v, s, j in zip(ids.tolist(), strata.tolist(), judged.tolist())
                    )
                )
    if not run_path.exists():
        per_topic = run_lines // topics
        with open(run_path, "w") as fh:
            for t in range(topics):
                ids = rng.integers(0, 2_000_000, size=per_topic)
                scores = np.round(rng.random(per_topic), 6)
                fh.write(
                    "".join(
                        f"{1700 + t} Q0 shot{v // shots_per_video:05d}_{v % shots_per_video + 1} {r} {x:.6f} huge\n"
                        for r, (v, x) in enumerate(zip(ids.tolist(), scores.tolist()), 1)
                    )
                )
    return qrels_path, run_path


def big_xml(folder: Path, items: int) -> Path:
    """A TRECVID XML submission with ``items`` items over 4 runs x 20 topics (2021 topic numbers)."""
    path = folder / f"sub_{items}.xml"
    if path.exists():
        return path
    per_topic = max(1, items // 80)
    with open(path, "w") as fh:
        fh.write(
            '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE videoAdhocSearchResults SYSTEM '
            '"https://www-nlpir.nist.gov/projects/tv2021/dtds/videoAdhocSearchResults.dtd">\n<videoAdhocSearchResults>\n'
        )
        for priority in range(1, 5):
            fh.write(
                f'<videoAdhocSearchRunResult trType="M" class="F" task="F" novelty="N" pid="bench" '
                f'priority="{priority}" desc="generated">\n'
            )
            for topic in range(661, 681):
                fh.write(f'<videoAdhocSearchTopicResult tNum="{topic}" elapsedTime="1.0">\n')
                fh.write(
                    "".join(
                        f'<item seqNum="{r}" shotId="shot{(r * 7919 + topic) % 7475 + 1:05d}_{r % 97 + 1}"/>\n'
                        for r in range(1, per_topic + 1)
                    )
                )
                fh.write("</videoAdhocSearchTopicResult>\n")
            fh.write("</videoAdhocSearchRunResult>\n")
        fh.write("</videoAdhocSearchResults>\n")
    return path


def report(
    row: str, ours_s: float, ours_mb: float, base_s: float | None, base_mb: float | None, aim: str, note: str
) -> None:
    ratio = f"{base_s / ours_s:6.1f}x" if base_s else "   n/a"
    base = f"{base_s:8.3f} s {base_mb:7.0f} MB" if base_s is not None else "          n/a          "
    print(f"{row:44s} ours {ours_s:7.3f} s {ours_mb:6.0f} MB | baseline {base} | {ratio} (aim {aim}) {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--perl-script", help="path of NIST's sample_eval.pl (not shipped); needs perl")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--sizes", default="10000000,5000000", help="lines of the huge run and qrels")
    parser.add_argument("--xml-items", type=int, default=4_500_000)
    parser.add_argument("--rows", default="1,2,3,4", help="which rows to measure")
    parser.add_argument("--data-dir", default=str(Path(tempfile.gettempdir()) / "avsbench-bench-score"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = {int(r) for r in args.rows.split(",")}
    data = Path(args.data_dir)
    data.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="bench-score-"))
    env = dict(os.environ, PYTHONPATH=str(REPO), AVSBENCH_CACHE=str(scratch / "cache"), OMP_NUM_THREADS="1")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # run as an installed package does, from compiled bytecode
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "avsbench")], env=env, check=True)
    baseline = Baseline(args.perl_script, scratch)
    print(f"baseline: {baseline.name}; python {sys.version.split()[0]}, {os.cpu_count()} CPUs; min of {args.repeats}")
    try:
        if 1 in rows:
            timed(ours(QRELS_2021, [RUN_2021]), env)  # warms the qrels cache, as any earlier call does
            mine = best([ours(QRELS_2021, [RUN_2021])], env, args.repeats)
            base = best(baseline.commands(QRELS_2021, [RUN_2021]), env, args.repeats)
            report(
                "1. one run, one process (RUCMM 2021)",
                *mine,
                *base,
                ">= 2.5x",
                same_output(QRELS_2021, [RUN_2021], baseline, env),
            )
        if 2 in rows:
            runs = generated_runs(data, args.runs, args.seed)
            mine = best([ours(QRELS_2021, runs)], env, max(1, args.repeats // 2))
            base = best(baseline.commands(QRELS_2021, runs), env, 1)
            report(
                f"2. {len(runs)} runs, one call",
                *mine,
                *base,
                ">= 18x",
                same_output(QRELS_2021, runs, baseline, env) + f" ({len(runs)} runs)",
            )
        if 3 in rows:
            run_lines, qrels_lines = (int(x) for x in args.sizes.split(","))
            qrels, run = huge_files(data, run_lines, qrels_lines, args.seed)
            cold = []
            for attempt in range(args.repeats):  # cold each time: an empty qrels cache, the huge qrels are parsed
                cold.append(best([ours(qrels, [run])], dict(env, AVSBENCH_CACHE=str(scratch / f"cold{attempt}")), 1))
            mine = min(cold)
            base, note = huge_baseline(baseline, qrels, run, env, scratch)
            report(f"3. {run_lines:,}-line run + {qrels_lines:,}-line qrels", *mine, *base, ">= 18x, < 1.5 GB", note)
        if 4 in rows:
            xml = big_xml(data, args.xml_items)
            size = xml.stat().st_size / 1e6
            mine = best([ours(QRELS_2021, [xml])], env, 1)
            report(f"4. {size:.0f} MB XML ({args.xml_items:,} items): score", *mine, None, None, "< 1 GB", "")
            validate = [sys.executable, "-m", "avsbench", "validate", str(xml), "--year", "2021"]
            seconds, rss, _ = timed(validate, env)
            report(f"4. {size:.0f} MB XML: validate", seconds, rss, None, None, "< 1 GB", "")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("\nreproduce: python benchmarks/bench_score.py " + " ".join(sys.argv[1:]))


if __name__ == "__main__":
    main()
