"""The synthetic demo: pinned counts and first/middle/last records of every file the loaders read
(seed 7, the ``small_demo_root`` fixture), determinism, layout, statistics and learnability."""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data.bigfile import BigFile
from avsbench.data.captions import tokenize
from avsbench.data.collection import Collection
from avsbench.data.qrels import Qrels
from avsbench.data.synthetic import collections_for_years, ensure_demo, feature_specs, generate_demo
from avsbench.data.topics import YEARS, TopicSet
from avsbench.errors import ConfigError

TINY = {"n_shots": 300, "n_train_videos": 30, "n_val_videos": 10, "feature_dims": (16, 24, 32)}


def first_middle_last(items: list) -> tuple:
    return (len(items), items[0], items[len(items) // 2], items[-1])


def first_values(bigfile: BigFile) -> list[float]:
    n = bigfile.nrows
    return bigfile.read_rows([0, n // 2, n - 1])[:, 0].tolist()


# -- pinned records (seed 7, 3,000 shots, 500 / 100 training / validation videos) -----------------

SHOT_LISTS = {
    "v3c1": (3000, "shot00001_1", "shot00013_116", "shot00021_375"),
    "demotrain": (500, "video0", "video250", "video499"),
    "demoval": (100, "video500", "video550", "video599"),
}
FEATURE_VALUES = {
    ("v3c1", "demo_clip512"): [-0.22195, 0.01946, -0.06473],
    ("v3c1", "demo_partial768"): [-0.02417, 0.01235, 0.06311],
    ("v3c1", "demo_noisy1024"): [-0.19547, 0.18157, 0.06352],
    ("v3c1", "frame/demo_clip512"): [-0.12574, -0.21019, 0.0227],
    ("demotrain", "demo_clip512"): [0.21069, 0.03595, -0.11915],
    ("demotrain", "frame/demo_clip512"): [0.15592, -0.08399, -0.03029],
    ("demoval", "demo_noisy1024"): [-0.38249, -0.06195, -0.03749],
}
FRAME_IDS = {
    "v3c1": (10533, "shot00001_1_1", "shot00013_117_2", "shot00021_375_3"),
    "demotrain": (1776, "video0_1", "video254_5", "video499_3"),
    "demoval": (342, "video500_1", "video548_2", "video599_4"),
}
TEXT_FEATURES = {
    "v3c1": ((90, 512), (90, "611", "656", "610"), [0.08413, 0.10207, -0.02757]),
    "demotrain": ((2269, 512), (2269, "video0#0", "video244#3", "video499#3"), [0.11878, 0.13199, -0.09958]),
    "demoval": ((443, 512), (443, "video500#0", "video548#2", "video599#2"), [-0.13467, 0.12912, 0.08109]),
}
CAPTIONS = {
    "demotrain": (
        2269,
        "video0#0 a video of sand gesturing bicycling driving camera garden",
        "video244#3 there is bus, orchestra, platform and balloon",
        "video499#3 a clip showing flags running laptop",
    ),
    "demoval": (
        443,
        "video500#0 there is leaf, base, train, pub, hat and horn",
        "video548#2 someone filmed standing, eating, coast, kitchen, chef, reef and cook",
        "video599#2 a video of rope, opened and dog",
    ),
}
QRELS = {
    "tv19": (34555, "1611 0 shot00001_1 3 -1", "1625 0 shot00021_260 3 -1", "1640 0 shot00021_98 3 -1"),
    "tv20": (22873, "1641 0 shot00001_10 2 -1", "1650 0 shot00018_220 3 -1", "1660 0 shot00021_99 3 0"),
    "tv21": (23273, "1661 0 shot00001_101 3 -1", "1671 0 shot00001_167 3 -1", "1680 0 shot00021_98 3 -1"),
    "progress": (22286, "1591 0 shot00001_108 3 -1", "1600 0 shot00017_51 1 0", "1610 0 shot00021_99 3 0"),
}


@pytest.mark.parametrize("name", sorted(SHOT_LISTS))
def test_shot_lists(small_demo_root: Path, name: str) -> None:
    coll = Collection(small_demo_root, name)
    assert first_middle_last(coll.shots) == SHOT_LISTS[name]
    assert coll.is_synthetic


@pytest.mark.parametrize(("name", "feature"), sorted(FEATURE_VALUES))
def test_feature_files(small_demo_root: Path, name: str, feature: str) -> None:
    bigfile = BigFile(small_demo_root / name / "FeatureData" / feature)
    ids = FRAME_IDS[name] if feature.startswith("frame/") else SHOT_LISTS[name]
    assert first_middle_last(bigfile.ids) == ids
    assert bigfile.dim == int(re.search(r"\d+$", feature).group())
    np.testing.assert_allclose(first_values(bigfile), FEATURE_VALUES[name, feature], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", sorted(TEXT_FEATURES))
def test_text_features(small_demo_root: Path, name: str) -> None:
    shape, ids, values = TEXT_FEATURES[name]
    bigfile = Collection(small_demo_root, name).text_feature("demo_clip512")
    assert bigfile.shape == shape and first_middle_last(bigfile.ids) == ids
    np.testing.assert_allclose(first_values(bigfile), values, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", sorted(CAPTIONS))
def test_caption_files(small_demo_root: Path, name: str) -> None:
    coll = Collection(small_demo_root, name)
    lines = coll.caption_path.read_text().splitlines()
    assert first_middle_last(lines) == CAPTIONS[name]
    captions = coll.captions()
    assert len(captions) == CAPTIONS[name][0]
    assert captions.videos == coll.shots  # every video has captions, in shot-list order
    assert list(captions.ids) == coll.text_feature("demo_clip512").ids


@pytest.mark.parametrize("edition", sorted(QRELS))
def test_qrels_files(small_demo_root: Path, edition: str) -> None:
    path = small_demo_root / "v3c1" / "TextData" / f"avs.qrels.{edition}"
    lines = path.read_text().splitlines()
    assert first_middle_last(lines) == QRELS[edition]
    year = next(y for y in YEARS.values() if y.edition == edition)
    shots = set(Collection(small_demo_root, "v3c1").shots)
    lo, hi = year.topic_range
    for line in lines:
        topic, zero, shot, stratum, rel = line.split()
        assert lo <= int(topic[1:]) <= hi and topic[0] == "1" and zero == "0"
        assert shot in shots and stratum in {"1", "2", "3"} and rel in {"-1", "0", "1"}
    qrels = Qrels.read(path)
    assert len(qrels) == hi - lo + 1


def test_topic_files_are_the_real_ones(small_demo_root: Path) -> None:
    coll = Collection(small_demo_root, "v3c1")
    for year in coll.years():
        assert coll.topics(year).topics == year.topics().topics
    assert sorted(int(t) for t in coll.text_feature("demo_clip512").ids) == sorted(
        t.number for y in coll.years() for t in y.topics()
    )


def test_word_vectors_cover_the_vocabulary(small_demo_root: Path) -> None:
    w2v = BigFile(small_demo_root / "word2vec" / "demo500")
    assert w2v.dim == 500 and w2v.nrows == 512
    assert first_middle_last(w2v.ids) == (512, "43rd", "sewing", "without")
    vocabulary = set(w2v.ids)
    for name in ("demotrain", "demoval"):
        for text in Collection(small_demo_root, name).captions().texts:
            assert set(tokenize(text)) <= vocabulary
    for year in YEARS.values():
        for topic in year.topics():
            assert set(tokenize(topic.text)) <= vocabulary
    # a synonym is closer to its concept than to an unrelated word
    man, guy, drone = w2v.read(["man", "guy", "drone"])
    cos = lambda a, b: float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))  # noqa: E731
    assert cos(man, guy) > 0.7 > abs(cos(man, drone))


def test_layout_labels_and_manifest(small_demo_root: Path) -> None:
    assert (small_demo_root / "SYNTHETIC.md").read_text().startswith("# SYNTHETIC DATA")
    for name in ("v3c1", "demotrain", "demoval"):
        assert (small_demo_root / name / "SYNTHETIC.md").is_file()
    assert not [p for p in small_demo_root.rglob(".*")]  # no temporary files or folders left
    manifest = json.loads((small_demo_root / "manifest.json").read_text())
    assert manifest["synthetic"] is True and manifest["params"]["seed"] == 7
    v3c1 = manifest["collections"]["v3c1"]
    assert v3c1["features"] == {"demo_clip512": 512, "demo_partial768": 768, "demo_noisy1024": 1024}
    assert v3c1["frames"] == 10533 and manifest["collections"]["demotrain"]["captions"] == 2269


def test_statistics_match_the_qrels(small_demo_root: Path) -> None:
    manifest = json.loads((small_demo_root / "manifest.json").read_text())
    for edition, stats in manifest["collections"]["v3c1"]["editions"].items():
        qrels = Qrels.read(small_demo_root / "v3c1" / "TextData" / f"avs.qrels.{edition}")
        strata = collections.Counter()
        for topic_id in qrels.topic_ids:
            topic = qrels[topic_id]
            assert len(topic.relevant_shots) == stats["per_topic"][topic_id[1:]]["judged_relevant"]
            assert len(topic.relevant_shots) <= stats["per_topic"][topic_id[1:]]["relevant"]
            for s, n in topic.sampled.items():
                strata[s] += n
        for stratum in stats["strata"]:
            assert strata[str(stratum["stratum"])] == stratum["sampled"]
        rates = [s["sampled_fraction"] for s in stats["strata"]]
        assert rates[0] == 1.0 and 0.4 < rates[1] < 0.6 and 0.15 < rates[2] < 0.25


def test_topics_have_a_plausible_number_of_relevant_shots(small_demo_root: Path) -> None:
    # targets are 25..300 at 30,000 shots and grow with the square root of the size: 8..95 at 3,000
    manifest = json.loads((small_demo_root / "manifest.json").read_text())
    for stats in manifest["collections"]["v3c1"]["editions"].values():
        relevant = [t["relevant"] for t in stats["per_topic"].values()]
        assert 3 <= min(relevant) and max(relevant) <= 150 and 15 <= float(np.median(relevant)) <= 60


def _mean_auc(scores: np.ndarray, topic_ids: list[str], qrels: Qrels, row_of: dict[str, int]) -> float:
    aucs = []
    for i, topic in enumerate(topic_ids):
        judged = qrels["1" + topic].judgment
        pos = [row_of[s] for s, j in judged.items() if j > 0]
        neg = [row_of[s] for s, j in judged.items() if j == 0]
        if pos and neg:
            aucs.append(float((scores[pos, i][:, None] > scores[neg, i][None, :]).mean()))
    return float(np.mean(aucs))


def test_features_have_the_known_quality_and_training_generalises(small_demo_root: Path) -> None:
    train, test = Collection(small_demo_root, "demotrain"), Collection(small_demo_root, "v3c1")
    captions = train.captions()
    caption_vectors = train.text_feature("demo_clip512").read(captions.ids)
    videos = captions.videos
    video_row = {v: i for i, v in enumerate(videos)}
    targets = np.zeros((len(videos), caption_vectors.shape[1]), dtype=np.float32)
    np.add.at(targets, [video_row[v] for v in captions.video_ids], caption_vectors)
    topics = test.text_feature("demo_clip512")
    topic_ids = [t for t in topics.ids if 611 <= int(t) <= 640]
    queries = topics.read(topic_ids)
    qrels = Qrels.read(test.qrels_path(YEARS["2019"]))
    row_of = {s: i for i, s in enumerate(test.shots)}
    learned = {}
    for name in ("demo_clip512", "demo_partial768", "demo_noisy1024"):
        x_train, x_test = train.feature(name).read(videos), test.feature(name).read(test.shots)
        ridge = np.linalg.solve(x_train.T @ x_train + 10 * np.eye(x_train.shape[1]), x_train.T @ targets)
        learned[name] = _mean_auc(x_test @ ridge @ queries.T, topic_ids, qrels, row_of)
    zero_shot = _mean_auc(test.feature("demo_clip512").read(test.shots) @ queries.T, topic_ids, qrels, row_of)
    assert zero_shot > 0.93  # the text feature is aligned with demo_clip512
    assert learned["demo_clip512"] > 0.85
    assert learned["demo_clip512"] > max(learned["demo_partial768"], learned["demo_noisy1024"]) + 0.05
    assert min(learned.values()) > 0.7  # every feature carries signal a model can learn from captions


# -- determinism, ensure_demo, guards, CLI --------------------------------------------------------


def _digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    generate_demo(tmp_path / "a", seed=3, **TINY)
    generate_demo(tmp_path / "b", seed=3, **TINY)
    generate_demo(tmp_path / "c", seed=4, **TINY)
    a, b, c = _digest(tmp_path / "a"), _digest(tmp_path / "b"), _digest(tmp_path / "c")
    assert a == b
    assert a.keys() == c.keys()
    assert a["v3c1/FeatureData/demo_clip16/feature.bin"] != c["v3c1/FeatureData/demo_clip16/feature.bin"]


def test_ensure_demo_generates_once(tmp_path: Path) -> None:
    root = ensure_demo(tmp_path / "d", seed=3, **TINY)
    stamp = os.stat(root / "manifest.json").st_mtime_ns
    assert ensure_demo(tmp_path / "d", seed=3, **TINY) == root
    assert os.stat(root / "manifest.json").st_mtime_ns == stamp
    ensure_demo(tmp_path / "d", seed=5, **TINY)
    assert json.loads((root / "manifest.json").read_text())["params"]["seed"] == 5


def test_iacc3_shot_ids_and_years(tmp_path: Path) -> None:
    generate_demo(tmp_path, collections=("iacc.3",), seed=1, **TINY)
    coll = Collection(tmp_path, "iacc.3")
    assert coll.shots[0] == "shot35345_1"
    assert all(35345 <= int(s[4:].split("_")[0]) <= 39937 for s in coll.shots)
    assert sorted(p.name for p in coll.text_dir.glob("avs.qrels.*")) == [
        "avs.qrels.tv16",
        "avs.qrels.tv17",
        "avs.qrels.tv18",
    ]
    assert len(TopicSet.read(coll.text_dir / "tv16.avs.txt")) == 30
    assert collections_for_years(["2016", "2019", "2017"]) == ("iacc.3", "v3c1")


def test_refuses_to_overwrite_a_real_collection(tmp_path: Path) -> None:
    (tmp_path / "v3c1" / "VideoSets").mkdir(parents=True)
    with pytest.raises(ConfigError, match="not a generated demo collection"):
        generate_demo(tmp_path, **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v3c1"]


def test_parameter_errors() -> None:
    with pytest.raises(ConfigError):
        generate_demo("/nonexistent-avsbench", n_shots=10)
    with pytest.raises(ConfigError):
        generate_demo("/nonexistent-avsbench", collections=("msrvtt",))
    assert [s.name for s in feature_specs((512, 2048, 2048, 2048))] == [
        "demo_clip512",
        "demo_partial2048",
        "demo_noisy2048",
        "demo_noisy2048_2",
    ]


def test_cli_info_shows_synthetic_and_statistics(small_demo_root: Path) -> None:
    result = CliRunner().invoke(main, ["collection", "info", "v3c1", "--rootpath", str(small_demo_root)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "SYNTHETIC" in out and "shots: 3,000" in out
    assert "demo_partial768" in out and "3,000 x 768" in out
    assert "stratum 1: 4,020 pooled, 4,020 sampled (100%), 915 judged relevant" in out
    assert "true relevant shots/topic (generator): min 8 median 28 max 108" in out
    assert "problems: none" in out


def test_cli_demo_command(tmp_path: Path) -> None:
    args = [
        "collection",
        "demo",
        "--rootpath",
        str(tmp_path),
        "--shots",
        "300",
        "--train-videos",
        "30",
        "--seed",
        "2",
        "--feature-dims",
        "16,24",
        "--no-frames",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in result.output and "v3c1: 300 shots" in result.output
    assert Collection(tmp_path, "v3c1").frame_feature_names() == []
    assert Collection(tmp_path, "demotrain").feature_names() == ["demo_clip16", "demo_partial24"]
    result = CliRunner().invoke(main, ["collection", "demo", "--rootpath", str(tmp_path), "--feature-dims", "a,b"])
    assert result.exit_code == 2 and "comma-separated integers" in result.output
