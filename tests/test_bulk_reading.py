"""Bulk (numpy) reading of runs and qrels (issue 12): exact numbers, exact tie order, bounded reading."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pytest

from avsbench.data import bulktext, runs
from avsbench.data.qrels import Qrels
from avsbench.data.runs import RunFile
from avsbench.errors import InputFormatError
from avsbench.eval.sample_eval import evaluate, format_sample_eval


def test_parse_floats_is_bit_identical_to_float() -> None:
    rnd = random.Random(3)
    texts = [
        "0",
        "-0",
        "+.5",
        "5.",
        "1e+3",
        "1E-03",
        "00012.5000",
        "-6.123e-03",
        ".750",
        "750e-3",
        "1e400",
        "123456789012345678",
        "0.1000000000000000055511151231257827",
        "9007199254740993",
        "4.7312e-04",
    ]
    for _ in range(5000):
        value = rnd.uniform(-1e4, 1e4) * 10 ** rnd.randint(-6, 3)
        texts.append(rnd.choice([repr(value), f"{value:.6f}", f"{value:.3e}", str(int(value))]))
    values, failed = bulktext.parse_floats(np.array([t.encode() for t in texts]))
    assert not failed.any()
    expected = np.array([float(t) for t in texts])
    assert values.view(np.uint64).tolist() == expected.view(np.uint64).tolist()


@pytest.mark.parametrize("text", ["abc", "1e", "--1", ".", "1.2.3", "1_0", "inf", "nan", "e5", "+", "0x10"])
def test_parse_floats_rejects_what_is_not_a_plain_number(text: str) -> None:
    _, failed = bulktext.parse_floats(np.array([b"1", text.encode()]))
    assert failed.tolist() == [False, True]


def _random_run(rnd: random.Random, topics: int, lines: int) -> bytes:
    out = []
    for t in range(topics):
        for i in range(lines):
            shot = f"shot{rnd.randint(1, lines // 2):05d}_{rnd.randint(1, 3)}"  # many duplicates
            score = rnd.choice([rnd.randint(0, 50), rnd.random()])  # many ties
            out.append(f"{1661 + t} Q0 {shot} {i + 1} {score} r\n")
    return "".join(out).encode()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("chunk_bytes", [700, 1 << 20])
def test_keeping_the_best_lines_while_reading_is_exact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, chunk_bytes: int
) -> None:
    monkeypatch.setattr(runs, "PRUNE_ROWS", 50)
    monkeypatch.setattr(bulktext, "CHUNK_BYTES", chunk_bytes)
    rnd = random.Random(seed)
    path = tmp_path / "big.run"
    path.write_bytes(_random_run(rnd, 3, 900))
    qrels_text = "".join(
        f"{1661 + t} 0 shot{i:05d}_{j} {1 + i % 3} {rnd.choice([1, 0, -1])}\n"
        for t in range(3)
        for i in range(1, 450)
        for j in (1, 2)
    )
    qrels = Qrels.from_bytes(qrels_text.encode())
    full = RunFile.read(path)
    kept = RunFile.read(path, keep_best=100)
    assert sum(len(t.score_values) for t in kept.topics.values()) < sum(
        len(t.score_values) for t in full.topics.values()
    )
    for topic in full.topics:
        assert kept.topics[topic].ranked()[:100] == full.topics[topic].ranked()[:100]
        assert kept.topics[topic].num_lines == full.topics[topic].num_lines
    a = evaluate(qrels, full, max_results=100)
    b = evaluate(qrels, kept, max_results=100)
    assert format_sample_eval(a, True) == format_sample_eval(b, True)


@pytest.mark.parametrize("chunk_bytes", [40, 1 << 20])
def test_a_demoted_kept_shot_makes_the_reader_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk_bytes: int
) -> None:
    monkeypatch.setattr(runs, "PRUNE_ROWS", 4)
    monkeypatch.setattr(bulktext, "CHUNK_BYTES", chunk_bytes)
    lines = [f"1 Q0 s{i} {i} {100 - i} r\n" for i in range(12)]
    lines += [f"1 Q0 s{i} 99 -{i} r\n" for i in range(3)]  # the three best shots sink to the bottom
    path = tmp_path / "demoted.run"
    path.write_text("".join(lines))
    kept = RunFile.read(path, keep_best=3)
    assert [s for s, _ in kept.topics["1"].ranked()[:3]] == ["s3", "s4", "s5"]


def test_gzipped_run_and_qrels_are_read_transparently(tmp_path: Path) -> None:
    run = tmp_path / "run.txt.gz"
    run.write_bytes(gzip.compress(b"7 Q0 x 1 4 r\n7 Q0 a 2 3 r\n7 Q0 e 3 2 r\n7 Q0 c 4 1 r\n"))
    qrels = tmp_path / "q.gz"
    qrels.write_bytes(gzip.compress(b"7 0 a 1 1\n7 0 b 1 0\n7 0 c 2 1\n7 0 d 2 0\n7 0 e 2 -1\n7 0 f 2 -1\n"))
    result = evaluate(Qrels.read(qrels), RunFile.read(run))
    assert f"{result.inf_ap:6.4f}" == "0.5556"


def test_corrupt_gzip_is_one_clear_error(tmp_path: Path) -> None:
    run = tmp_path / "run.txt.gz"
    run.write_bytes(gzip.compress(b"7 Q0 x 1 4 r\n" * 1000)[:40])
    with pytest.raises(InputFormatError, match="gzip"):
        RunFile.read(run)


def test_errors_name_the_line_in_a_later_chunk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bulktext, "CHUNK_BYTES", 64)
    path = tmp_path / "bad.run"
    path.write_text("".join(f"7 Q0 s{i} {i} {100 - i} r\n" for i in range(40)) + "7 Q0 z 41 1x r\n")
    with pytest.raises(InputFormatError) as info:
        RunFile.read(path)
    assert info.value.line == 41
    assert len(list(bulktext.line_chunks(path, "run"))) > 10


def test_shots_sharing_a_hash_key_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    golden = Path(__file__).parent / "golden" / "sample_eval"
    qrels_bytes = (golden / "qrels" / "iacc17g.qrels").read_bytes()
    run_bytes = (golden / "runs" / "iacc17g_duplicate_shots.run").read_bytes()
    monkeypatch.setattr(bulktext, "hash_keys", lambda values: np.zeros(len(values), dtype=np.uint64))
    result = evaluate(Qrels.from_bytes(qrels_bytes), RunFile.from_bytes(run_bytes)[0])
    assert (
        format_sample_eval(result, True).encode()
        == (golden / "expected" / "iacc17g_duplicate_shots.q.txt").read_bytes()
    )


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_files_of_many_chunks_parsed_by_threads_read_as_one_chunk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, threads: int
) -> None:
    rnd = random.Random(11)
    run_bytes = _random_run(rnd, 5, 2000)
    qrels_lines = [
        f"{1661 + t} 0 shot{rnd.randint(1, 900):05d}_{rnd.randint(1, 3)} {rnd.randint(1, 3)} {rnd.choice([-1, 0, 1])}\n"
        for t in range(5)
        for _ in range(1500)
    ]
    qrels_bytes = "".join(qrels_lines).encode()
    (tmp_path / "run.txt").write_bytes(run_bytes)
    (tmp_path / "q.qrels").write_bytes(qrels_bytes)
    whole_run, whole_qrels = RunFile.from_bytes(run_bytes)[0], Qrels.from_bytes(qrels_bytes)
    monkeypatch.setattr(bulktext, "CHUNK_BYTES", 5000)
    monkeypatch.setattr(bulktext, "CHUNK_THREADS", threads)
    assert len(list(bulktext.line_chunks(tmp_path / "run.txt", "run"))) > 50
    chunked_qrels = Qrels.parse(tmp_path / "q.qrels")
    assert chunked_qrels.topic_ids == whole_qrels.topic_ids
    for topic in whole_qrels.topic_ids:
        assert chunked_qrels[topic].judgment == whole_qrels[topic].judgment
        assert chunked_qrels[topic].estimated_relevant == whole_qrels[topic].estimated_relevant
    for keep in (None, 40):
        chunked = RunFile.read(tmp_path / "run.txt", keep_best=keep)
        assert chunked.topic_ids == whole_run.topic_ids
        for topic in whole_run.topic_ids:
            assert chunked.topics[topic].num_lines == whole_run.topics[topic].num_lines
            assert chunked.topics[topic].ranked()[:40] == whole_run.topics[topic].ranked()[:40]
    expected = format_sample_eval(evaluate(whole_qrels, whole_run), True)
    assert (
        format_sample_eval(evaluate(chunked_qrels, RunFile.read(tmp_path / "run.txt", keep_best=1000)), True)
        == expected
    )


def test_the_first_bad_line_is_reported_when_several_chunks_are_bad(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulktext, "CHUNK_BYTES", 256)
    lines = [f"7 Q0 s{i} {i} {1000 - i} r\n" for i in range(400)]
    lines[150] = "7 Q0 s150 151 oops r\n"
    lines[390] = "7 Q0 s390 391\n"  # a later chunk, a different error
    path = tmp_path / "bad.run"
    path.write_text("".join(lines))
    for _ in range(5):  # whichever thread finishes first
        with pytest.raises(InputFormatError) as info:
            RunFile.read(path)
        assert info.value.line == 151 and "oops" in str(info.value)


def test_a_topic_listing_its_shots_twice_is_kept_without_reading_it_again(tmp_path: Path) -> None:
    lines = [f"7 Q0 s{i % 80} {i + 1} {1000 - i} r\n" for i in range(150)]  # 80 shots, 70 of them twice
    path = tmp_path / "twice.run"
    path.write_text("".join(lines))
    kept = RunFile.read(path, keep_best=100)
    full = RunFile.read(path)
    assert kept.topics["7"].kept_best == 100  # read once, keeping the best: not read again in full
    assert kept.topics["7"].ranked() == full.topics["7"].ranked()
    assert distinct_count(kept) == distinct_count(full) == 80


def distinct_count(run: RunFile) -> int:
    return runs.distinct_shot_count(run.topics["7"])


def test_a_rank_conflict_found_on_the_kept_lines_says_so(tmp_path: Path) -> None:
    lines = [f"7 Q0 s{i:02d} {i + 1} {50 - i // 2} r\n" for i in range(40)]  # ties in pairs, all the way down
    path = tmp_path / "ties.run"
    path.write_text("".join(lines))
    full = RunFile.read(path).topics["7"].rank_conflict()
    kept = RunFile.read(path, keep_best=6).topics["7"].rank_conflict()
    assert full == "ties on the score (20 shot(s) score the same as the one ranked above)"
    assert (
        kept
        == "ties on the score (3 shot(s) score the same as the one ranked above, among the 6 best-scored shots kept)"
    )
