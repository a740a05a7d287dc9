"""Collection layout, captions, coverage checks and ``avsbench collection info`` on hand-made collections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from avsbench.cli import main
from avsbench.data.bigfile import BigFile
from avsbench.data.captions import CaptionSet, video_id_of, write_captions
from avsbench.data.collection import Collection, summarize
from avsbench.data.topics import get_year
from avsbench.errors import InputFormatError, MissingDataError, UnknownIdError

SHOTS = ["shot00812_1", "shot00812_2", "shot00813_1", "shot00813_2"]  # shot00812_1 is a V3C1 dropped shot


def make_v3c1(root: Path, feature_ids: list[str] | None = None) -> Collection:
    base = root / "v3c1"
    (base / "VideoSets").mkdir(parents=True)
    (base / "VideoSets" / "v3c1.txt").write_text("".join(s + "\n" for s in SHOTS))
    BigFile.write(
        base / "FeatureData" / "f4",
        feature_ids or SHOTS,
        np.arange(4 * len(feature_ids or SHOTS), dtype=np.float32).reshape(-1, 4),
    )
    frame_ids = [f"{s}_{n}" for s in SHOTS for n in (1, 2)]
    BigFile.write(base / "FeatureData" / "frame" / "f4", frame_ids, np.ones((len(frame_ids), 4)))
    BigFile.write(base / "TextData" / "clip", ["611", "612"], np.ones((2, 4)))
    (base / "TextData" / "tv19.avs.txt").write_text("611 a drone flying\n612 a truck being driven in the daytime\n")
    (base / "TextData" / "avs.qrels.tv19").write_text(
        "1611 0 shot00812_2 1 1\n1611 0 shot00813_1 1 0\n1611 0 shot00813_2 2 -1\n1612 0 shot00813_1 1 1\n"
    )
    return Collection(root, "v3c1")


def test_layout_and_shots(tmp_path: Path) -> None:
    coll = make_v3c1(tmp_path)
    assert coll.shots == SHOTS
    assert "shot00812_1" in coll.dropped_shots
    assert coll.searchable_shots == SHOTS[1:]
    assert (
        coll.feature_names() == ["f4"]
        and coll.frame_feature_names() == ["f4"]
        and coll.text_feature_names() == ["clip"]
    )
    assert coll.feature("f4").shape == (4, 4)
    assert coll.frame_feature("f4").n_frames("shot00813_2") == 2
    assert coll.text_feature("clip").read(["612"]).shape == (1, 4)
    assert not coll.is_synthetic
    year = get_year(2019)
    assert coll.topic_path(year) is not None and len(coll.topics(year)) == 2
    assert coll.qrels_path(year) == coll.text_dir / "avs.qrels.tv19"
    # tv21 qrels are not in TextData: a real collection falls back to the bundled ones
    assert coll.qrels_path(get_year(2021)).name == "avs.qrels.tv21"
    assert len(coll.topics(get_year(2021))) == 20  # bundled topics


def test_missing_things_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match="collection 'v3c1' not found"):
        Collection(tmp_path, "v3c1")
    coll = make_v3c1(tmp_path)
    with pytest.raises(MissingDataError, match=r"feature 'nope' not found in collection v3c1 \(available: f4\)"):
        coll.feature("nope")
    with pytest.raises(MissingDataError, match="frame feature 'nope'"):
        coll.frame_feature("nope")
    with pytest.raises(MissingDataError, match="caption file not found"):
        coll.captions()


def test_shot_list_errors(tmp_path: Path) -> None:
    coll = make_v3c1(tmp_path)
    coll.shot_list_path.write_text("shot1_1\nshot1_2 extra\n")
    with pytest.raises(InputFormatError, match=r"v3c1.txt:2: more than one field"):
        _ = Collection(tmp_path, "v3c1").shots
    coll.shot_list_path.write_text("shot1_1\n\nshot1_1\n")
    with pytest.raises(InputFormatError, match=r"v3c1.txt:3: duplicate shot id 'shot1_1'"):
        _ = Collection(tmp_path, "v3c1").shots


def test_feature_coverage_check(tmp_path: Path) -> None:
    coll = make_v3c1(tmp_path, feature_ids=["shot00812_1", "shot00813_1"])  # the dropped shot does not count
    with pytest.raises(UnknownIdError, match=r"2 of 3 shots of v3c1.txt have no feature: shot00812_2, shot00813_2"):
        coll.check_feature_covers_shots(coll.feature("f4"))
    coll.check_feature_covers_shots(coll.frame_feature("f4"))
    summary = summarize(coll)
    assert len(summary.problems) == 1 and "video feature f4" in summary.problems[0]


def test_summary_and_cli_info(tmp_path: Path) -> None:
    coll = make_v3c1(tmp_path)
    summary = summarize(coll)
    assert summary.shots == 4 and summary.dropped_in_list == 1 and summary.problems == ()
    tv19 = next(q for q in summary.qrels if q.edition == "tv19")
    assert tv19.topics == 2 and tv19.pool_size_mean == 2.0
    assert tv19.strata == (("1", 3, 3, 2), ("2", 1, 0, 0))
    result = CliRunner().invoke(main, ["collection", "info", "v3c1", "--rootpath", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "shots: 4, 1 of them dropped by NIST" in result.output
    assert "stratum 1: 3 pooled, 3 sampled (100%), 2 judged relevant" in result.output
    assert "SYNTHETIC" not in result.output and "problems: none" in result.output


def test_cli_info_reports_problems(tmp_path: Path) -> None:
    coll = make_v3c1(tmp_path)
    (coll.feature_dir / "f4" / "feature.bin").write_bytes(b"\0" * 10)
    result = CliRunner().invoke(main, ["collection", "info", "v3c1", "--rootpath", str(tmp_path)])
    assert result.exit_code == 1
    assert "problems:" in result.output and "truncated" in result.output
    result = CliRunner().invoke(main, ["collection", "info", "nothere", "--rootpath", str(tmp_path)])
    assert result.exit_code == 2 and "collection 'nothere' not found" in result.output


# -- captions -------------------------------------------------------------------------------------


def test_caption_file(tmp_path: Path) -> None:
    path = tmp_path / "c.caption.txt"
    path.write_text(
        "video7768#0 a man  plays guitar\n\nvideo7768#14 someone sings\nvideo1#0\ntgif#a#1 odd id\n", encoding="utf-8"
    )
    captions = CaptionSet.read(path)
    assert len(captions) == 4
    assert captions.ids == ("video7768#0", "video7768#14", "video1#0", "tgif#a#1")
    assert captions.texts[0] == "a man  plays guitar" and captions.texts[2] == ""
    assert captions.video_ids == ("video7768", "video7768", "video1", "tgif")
    assert captions.videos == ["video7768", "video1", "tgif"]
    assert captions[1].text == "someone sings"
    assert video_id_of("v#1#2") == "v"


@pytest.mark.parametrize(
    ("text", "pattern"),
    [("v#1 a\nv#1 b\n", r":2: duplicate caption id 'v#1'"), ("#1 a caption\n", r":1: caption id '#1' has no video id")],
)
def test_caption_errors(tmp_path: Path, text: str, pattern: str) -> None:
    path = tmp_path / "c.txt"
    path.write_text(text)
    with pytest.raises(InputFormatError, match=pattern):
        CaptionSet.read(path)


def test_write_captions_round_trip(tmp_path: Path) -> None:
    write_captions(tmp_path / "c.txt", ["v#0", "v#1"], ["a  b", "c"])
    assert (tmp_path / "c.txt").read_text() == "v#0 a b\nv#1 c\n"
    assert CaptionSet.read(tmp_path / "c.txt").texts == ("a b", "c")
    with pytest.raises(InputFormatError, match="duplicate caption ids"):
        write_captions(tmp_path / "d.txt", ["v#0", "v#0"], ["a", "b"])
    assert not (tmp_path / "d.txt").exists()
