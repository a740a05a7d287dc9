"""Scorer speed: loading the 2021 qrels, scoring the two real 2021 runs, scoring 100 generated runs.

Baseline, measured in the same process: the plain scalar reading of the spec in
tests/sample_eval_reference.py (dicts, one Python loop per rank; parses and scores in one go).
Every figure is the minimum over ``--repeats`` timings (wall clock, ``time.perf_counter``); the
machine may be shared, so the minimum is the least disturbed measurement.

    .venv/bin/python benchmarks/bench_score.py [--repeats 7] [--runs 100] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))  # the scalar reference lives with the tests

from avsbench.data.qrels import Qrels  # noqa: E402
from avsbench.data.resources import bundled_qrels, bundled_runs  # noqa: E402
from avsbench.data.runs import RunFile  # noqa: E402
from avsbench.eval.sample_eval import evaluate, format_sample_eval  # noqa: E402
from sample_eval_reference import reference_evaluate, reference_qrels, reference_score  # noqa: E402


def best_ms(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1e3


def generated_runs(qrels: Qrels, count: int, seed: int) -> list[bytes]:
    """TREC runs shaped like real ones: per topic 1000 shots, about 60% from the pool, tied blocks of scores."""
    rnd = random.Random(seed)
    runs = []
    for i in range(count):
        lines = []
        for topic in qrels.topic_ids:
            pool = list(qrels[topic].judgment)
            shots = set(rnd.sample(pool, min(600, len(pool))))
            while len(shots) < 1000:
                shots.add(f"shot{rnd.randint(1, 7475):05d}_{rnd.randint(1, 400)}")
            ordered = sorted(shots, key=lambda s: rnd.random())
            lines.extend(f"{topic} Q0 {s} {r} {10000 - r // (1 + i % 4)} gen{i}\n" for r, s in enumerate(ordered, 1))
        runs.append("".join(lines).encode())
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--runs", type=int, default=100, help="number of generated runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    qrels_path = bundled_qrels("tv21")
    qrels_text = qrels_path.read_text()
    print(f"qrels: {qrels_path.name} ({qrels_text.count(chr(10))} lines), python {sys.version.split()[0]}")
    load_ms = best_ms(lambda: Qrels.read(qrels_path), args.repeats)
    print(f"load 2021 qrels (incl. the scorer's lookup tables): {load_ms:8.1f} ms   (aim: < 500 ms)")
    qrels = Qrels.read(qrels_path)
    base_tables = reference_qrels(qrels_text)
    base_load_ms = best_ms(lambda: reference_qrels(qrels_text), max(1, args.repeats // 2))
    print(f"  scalar baseline, qrels tables from the text:        {base_load_ms:8.1f} ms")

    print("\nreal 2021 runs (20 topics x 1000 lines)")
    for path in bundled_runs():
        run = RunFile.read(path)
        text = path.read_text()
        assert format_sample_eval(evaluate(qrels, run), True) == _reference_text_check(qrels_text, text, qrels, run)
        read_ms = best_ms(lambda: RunFile.read(path), args.repeats)
        score_ms = best_ms(lambda: evaluate(qrels, run), args.repeats)
        base_ms = best_ms(lambda: reference_score(base_tables, text), max(1, args.repeats // 2))
        print(
            f"  {path.name:26s} read {read_ms:6.1f} ms   score {score_ms:6.1f} ms (aim: < 20 ms)   "
            f"scalar baseline (read+score) {base_ms:7.1f} ms = {base_ms / (read_ms + score_ms):.1f}x ours"
        )

    runs = generated_runs(qrels, args.runs, args.seed)
    parsed = [RunFile.from_bytes(data)[0] for data in runs]
    score_all = best_ms(lambda: [evaluate(qrels, r) for r in parsed], max(1, args.repeats // 2))
    read_all = best_ms(lambda: [RunFile.from_bytes(data) for data in runs], max(1, args.repeats // 2))
    sample = runs[: max(1, args.runs // 10)]
    base_each = best_ms(lambda: [reference_score(base_tables, d.decode()) for d in sample], 1) / len(sample)
    ours_each = (score_all + read_all) / len(runs)
    print(f"\n{args.runs} generated runs (20 topics x 1000 lines, ties) against the 2021 qrels")
    print(f"  score only: {score_all:8.1f} ms in all, {score_all / len(runs):5.1f} ms per run")
    print(f"  read+score: {score_all + read_all:8.1f} ms in all, {ours_each:5.1f} ms per run")
    print(f"  scalar baseline read+score ({len(sample)} of the runs): {base_each:7.1f} ms per run = {base_each / ours_each:.1f}x ours")
    print("\nreproduce: .venv/bin/python benchmarks/bench_score.py " + " ".join(sys.argv[1:]))


def _reference_text_check(qrels_text: str, run_text: str, qrels: Qrels, run: RunFile) -> str:
    """The baseline's numbers must equal ours exactly (else the timing comparison is meaningless)."""
    ref = reference_evaluate(qrels_text, run_text)
    result = evaluate(qrels, run)
    if {t: r.measures() for t, r in result.per_topic.items()} != ref["per_topic"] or result.measures() != ref["summary"]:
        raise SystemExit("baseline and scorer disagree")
    return format_sample_eval(result, True)


if __name__ == "__main__":
    main()
