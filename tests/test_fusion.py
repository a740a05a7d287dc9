"""Late fusion: hand-checked RRF/CombSUM/CombMNZ, scorer tie order, valid output files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from avsbench.cli import main
from avsbench.data.resources import bundled_runs
from avsbench.data.runs import RunFile
from avsbench.errors import ConfigError
from avsbench.eval.fusion import fuse, fuse_files, fused_scores, normalise


def _run(name: str, topic_lists: dict[str, list[tuple[str, float]]]) -> RunFile:
    return RunFile.from_entries(((t, s, v) for t, pairs in topic_lists.items() for s, v in pairs), name=name)


RUN_A = _run("a", {"1611": [("shot1_1", 3.0), ("shot1_2", 2.0), ("shot1_3", 1.0)]})
RUN_B = _run("b", {"1611": [("shot1_2", 0.9), ("shot1_4", 0.5)], "1612": [("shot2_1", 7.0)]})


def _as_dict(fused: dict[str, list[tuple[str, float]]]) -> dict[str, dict[str, float]]:
    return {t: dict(pairs) for t, pairs in fused.items()}


def test_rrf_by_hand() -> None:
    fused = fused_scores([RUN_A, RUN_B], method="rrf", k=60)
    scores = _as_dict(fused)["1611"]
    assert scores["shot1_2"] == pytest.approx(1 / 62 + 1 / 61)
    assert scores["shot1_1"] == pytest.approx(1 / 61)
    assert scores["shot1_4"] == pytest.approx(1 / 62)
    assert scores["shot1_3"] == pytest.approx(1 / 63)
    assert [s for s, _ in fused["1611"]] == ["shot1_2", "shot1_1", "shot1_4", "shot1_3"]
    assert fused["1612"] == [("shot2_1", pytest.approx(1 / 61))]


def test_combsum_and_combmnz_by_hand_with_weights() -> None:
    # minmax: A -> 1, 0.5, 0 ; B -> 1, 0
    combsum = _as_dict(fused_scores([RUN_A, RUN_B], method="combsum", weights=[1.0, 2.0]))["1611"]
    assert combsum == pytest.approx({"shot1_1": 1.0, "shot1_2": 0.5 + 2.0, "shot1_3": 0.0, "shot1_4": 0.0})
    combmnz = _as_dict(fused_scores([RUN_A, RUN_B], method="combmnz"))["1611"]
    assert combmnz == pytest.approx({"shot1_1": 1.0, "shot1_2": 2 * 1.5, "shot1_3": 0.0, "shot1_4": 0.0})
    rank = _as_dict(fused_scores([RUN_A, RUN_B], method="combsum", norm="rank"))["1611"]
    assert rank == pytest.approx({"shot1_1": 1.0, "shot1_2": 2 / 3 + 1.0, "shot1_3": 1 / 3, "shot1_4": 0.5})


def test_ties_are_broken_by_descending_shot_id() -> None:
    fused = fused_scores([RUN_A, RUN_B], method="combsum")["1611"]
    # shot1_3 and shot1_4 both fuse to 0.0: the larger id comes first, as in sample_eval
    assert [s for s, _ in fused][-2:] == ["shot1_4", "shot1_3"]


def test_normalisations() -> None:
    scores = np.array([4.0, 2.0, 0.0])
    assert normalise(scores, "minmax").tolist() == [1.0, 0.5, 0.0]
    assert normalise(scores, "zscore").mean() == pytest.approx(0.0)
    assert normalise(scores, "zscore").std() == pytest.approx(1.0)
    assert normalise(scores, "rank").tolist() == pytest.approx([1.0, 2 / 3, 1 / 3])
    assert normalise(np.array([5.0, 5.0]), "minmax").tolist() == [1.0, 1.0]
    assert normalise(np.array([5.0, 5.0]), "zscore").tolist() == [0.0, 0.0]


def test_depth_limits_the_input() -> None:
    fused = _as_dict(fused_scores([RUN_A, RUN_B], method="rrf", depth=1))["1611"]
    assert set(fused) == {"shot1_1", "shot1_2"}


def test_duplicate_lines_use_the_later_score() -> None:
    dup = _run("dup", {"1611": [("shot1_1", 9.0), ("shot1_2", 5.0), ("shot1_1", 1.0)]})
    fused = fused_scores([dup], method="rrf")["1611"]
    assert [s for s, _ in fused] == ["shot1_2", "shot1_1"]


def _check_valid(path: Path) -> RunFile:
    lines = path.read_text().splitlines()
    run = RunFile.read(path)
    by_topic: dict[str, list[tuple[int, float]]] = {}
    for line in lines:
        topic, q0, _shot, rank, score, _tag = line.split()
        assert q0 == "Q0"
        by_topic.setdefault(topic, []).append((int(rank), float(score)))
    for topic, rows in by_topic.items():
        assert len(rows) <= 1000
        assert [r for r, _ in rows] == list(range(1, len(rows) + 1))
        scores = [s for _, s in rows]
        assert all(a > b for a, b in zip(scores, scores[1:])), f"scores not strictly decreasing in {topic}"
        assert len(set(s for s in run.topics[topic].shots)) == len(rows)
    return run


@pytest.mark.parametrize(
    ("method", "norm"), [("rrf", None), ("combsum", "minmax"), ("combsum", "zscore"), ("combmnz", "rank")]
)
def test_fusing_the_real_2021_runs_gives_a_valid_run(tmp_path: Path, method: str, norm: str | None) -> None:
    out = tmp_path / "fused.txt"
    fused = fuse_files(bundled_runs(), out, method=method, norm=norm)
    run = _check_valid(out)
    assert run.topic_ids == fused.topic_ids and len(run.topic_ids) == 20
    order = fused_scores([RunFile.read(p) for p in bundled_runs()], method=method, norm=norm)
    for topic in run.topic_ids:
        assert [s for s, _ in run.topics[topic].ranked()] == [s for s, _ in order[topic]]
        assert len(order[topic]) == 1000


def test_fuse_of_one_run_keeps_its_order() -> None:
    run = RunFile.read(bundled_runs()[0])
    fused = fuse([run], method="combsum")
    for topic in run.topic_ids:
        assert [s for s, _ in fused.topics[topic].ranked()] == [s for s, _ in run.topics[topic].ranked()][:1000]


@pytest.mark.parametrize(
    "options",
    [
        {"method": "borda"},
        {"method": "rrf", "norm": "minmax"},
        {"method": "combsum", "norm": "softmax"},
        {"method": "combsum", "weights": [1.0]},
        {"method": "combsum", "weights": [0.0, 0.0]},
        {"method": "combsum", "weights": [1.0, float("nan")]},
        {"method": "rrf", "k": -1.0},
        {"method": "rrf", "depth": 0},
    ],
)
def test_bad_options_raise(options: dict) -> None:
    with pytest.raises(ConfigError):
        fuse([RUN_A, RUN_B], **options)


def test_cli_fuse_writes_atomically_and_reports_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    a, b = (str(p) for p in bundled_runs())
    out = tmp_path / "fused.run"
    ok = runner.invoke(
        main, ["fuse", a, b, "--method", "combmnz", "--norm", "zscore", "--weights", "1,0.5", "--out", str(out)]
    )
    assert ok.exit_code == 0, ok.output
    _check_valid(out)
    assert sorted(os.listdir(tmp_path)) == ["fused.run"]

    bad = runner.invoke(main, ["fuse", a, b, "--method", "rrf", "--weights", "1", "--out", str(tmp_path / "x.run")])
    assert bad.exit_code == 2 and "1 weights for 2 runs" in bad.output
    assert not (tmp_path / "x.run").exists()

    missing = runner.invoke(
        main, ["fuse", a, str(tmp_path / "nope.txt"), "--method", "rrf", "--out", str(tmp_path / "y.run")]
    )
    assert missing.exit_code == 2 and "nope.txt" in missing.output
    assert sorted(os.listdir(tmp_path)) == ["fused.run"]


_shot_ids = st.sampled_from([f"shot{v}_{s}" for v in range(1, 6) for s in range(1, 5)])
_topic_lines = st.lists(
    st.tuples(_shot_ids, st.floats(-5, 5, allow_nan=False).map(lambda x: round(x, 2))), min_size=1, max_size=15
)
_runs = st.lists(
    st.dictionaries(st.sampled_from(["1611", "1612", "1640"]), _topic_lines, min_size=1, max_size=3),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None)
@given(
    run_lists=_runs,
    method_norm=st.sampled_from([("rrf", None), ("combsum", "minmax"), ("combsum", "zscore"), ("combmnz", "rank")]),
    depth=st.integers(1, 20),
)
def test_fusion_output_is_always_a_valid_run(
    run_lists: list[dict], method_norm: tuple[str, str | None], depth: int
) -> None:
    runs = [_run(f"r{i}", topics) for i, topics in enumerate(run_lists)]
    method, norm = method_norm
    fused = fuse(runs, method=method, norm=norm, depth=depth)
    expected_topics = sorted({t for topics in run_lists for t in topics})
    assert fused.topic_ids == expected_topics
    for topic in expected_topics:
        ranked = fused.topics[topic].ranked()
        scores = [score for _, score in ranked]
        assert all(a > b for a, b in zip(scores, scores[1:]))
        assert len({s for s, _ in ranked}) == len(ranked) == fused.topics[topic].num_lines
        pooled = {s for r in runs if topic in r.topics for s, _ in r.topics[topic].ranked()[:depth]}
        assert {s for s, _ in ranked} == pooled


def test_fused_score_column_holds_the_fused_values(tmp_path: Path) -> None:
    """Not 1000..1 (issue 11, item 3): each written score is the fused value (10 decimals), ties
    kept strictly decreasing by 1e-10 in the scorer's order."""
    expected = fused_scores([RUN_A, RUN_B], method="rrf", k=60)
    out = tmp_path / "fused.txt"
    fuse([RUN_A, RUN_B], method="rrf", k=60).write(out)
    lines = [line.split() for line in out.read_text().splitlines()]
    for topic, ranked in expected.items():
        written = [(shot, float(score)) for t, _, shot, _, score, _ in lines if t == topic]
        assert [s for s, _ in written] == [s for s, _ in ranked]
        assert [v for _, v in written] == pytest.approx([v for _, v in ranked], abs=1e-10)
    tied = fuse([RUN_A, RUN_B], method="combsum").topics["1611"]  # shot1_4 and shot1_3 both fuse to 0.0
    assert tied.shots == ["shot1_2", "shot1_1", "shot1_4", "shot1_3"] and tied.scores == [1.5, 1.0, 0.0, -1e-10]


@pytest.mark.parametrize("tag", ["my run", "evil\n1611 Q0 shot1_1 1 99 injected", "a\tb", "  ", "\n"])
def test_fuse_tag_is_cleaned_like_rank_run_ids(tmp_path: Path, tag: str) -> None:
    """A space or newline in --tag never makes a 7-field line or injects run lines (issue 11, item 3)."""
    from avsbench.data.runs import safe_run_id

    out = tmp_path / "fused.txt"
    res = CliRunner().invoke(
        main, ["fuse", *map(str, bundled_runs()), "--method", "rrf", "--tag", tag, "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert all(len(line.split()) == 6 for line in lines) and len(lines) == 20 * 1000
    assert {line.split()[5] for line in lines} == {safe_run_id(tag)}
    assert "injected" not in {line.split()[4] for line in lines}
    RunFile.read(out)  # our own strict reader accepts it


def test_fuse_refuses_to_overwrite_one_of_its_inputs(tmp_path: Path) -> None:
    """--out naming an input (directly, through '..', or a hard link) is refused, the input untouched (issue 11.3)."""
    a, b = bundled_runs()
    mine = tmp_path / "mine.txt"
    mine.write_bytes(Path(a).read_bytes())
    (tmp_path / "sub").mkdir()
    os.link(mine, tmp_path / "linked.txt")
    before = mine.read_bytes()
    for out in (mine, tmp_path / "sub" / ".." / "mine.txt", tmp_path / "linked.txt"):
        res = CliRunner().invoke(main, ["fuse", str(mine), str(b), "--method", "rrf", "--out", str(out)])
        assert res.exit_code == 2 and "is the input run" in res.output, res.output
        assert mine.read_bytes() == before
    with pytest.raises(ConfigError, match="is the input run"):
        fuse_files([b, mine], tmp_path / "." / "mine.txt", method="rrf")
    assert sorted(os.listdir(tmp_path)) == ["linked.txt", "mine.txt", "sub"]
