"""BigFile and FrameFeature: formats, request order, chunking, atomic writes and corruption errors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avsbench.cli import main
from avsbench.data.bigfile import BigFile, BigFileWriter
from avsbench.data.frames import FrameFeature, split_frame_id
from avsbench.errors import InputFormatError, MissingDataError, UnknownIdError


def make_bigfile(folder: Path, ids_text: str, shape_text: str, values: np.ndarray) -> Path:
    folder.mkdir(parents=True)
    (folder / "id.txt").write_text(ids_text, encoding="utf-8")
    (folder / "shape.txt").write_text(shape_text, encoding="utf-8")
    (folder / "feature.bin").write_bytes(np.asarray(values, dtype="<f4").tobytes())
    return folder


@pytest.fixture()
def matrix() -> np.ndarray:
    return np.arange(5 * 3, dtype=np.float32).reshape(5, 3) / 4


@pytest.fixture()
def five(tmp_path: Path, matrix: np.ndarray) -> BigFile:
    return BigFile.write(tmp_path / "five", ["s1", "s2", "s3", "s4", "s5"], matrix)


def test_written_files_are_the_documented_format(tmp_path: Path) -> None:
    BigFile.write(tmp_path / "f", ["a", "b"], np.array([[1.0, -2.0], [0.5, 3.0]]))
    assert (tmp_path / "f" / "shape.txt").read_text() == "2 2\n"
    assert (tmp_path / "f" / "id.txt").read_text() == "a\nb\n"
    raw = (tmp_path / "f" / "feature.bin").read_bytes()
    assert raw[:4] == b"\x00\x00\x80\x3f"  # 1.0 as little-endian float32
    assert np.frombuffer(raw, dtype="<f4").tolist() == [1.0, -2.0, 0.5, 3.0]
    assert sorted(os.listdir(tmp_path)) == ["f"]  # no temporary folders left behind


def test_attributes_and_counts(five: BigFile) -> None:
    assert (five.nrows, five.dim, five.shape, len(five)) == (5, 3, (5, 3), 5)
    assert five.ids[0] == "s1" and five.ids[2] == "s3" and five.ids[-1] == "s5"
    assert five.nbytes == 60
    assert "s4" in five and "s9" not in five


def test_read_returns_request_order_with_repeats(five: BigFile, matrix: np.ndarray) -> None:
    got = five.read(["s5", "s1", "s5", "s3"])
    np.testing.assert_array_equal(got, matrix[[4, 0, 4, 2]])
    assert got.dtype == np.float32
    assert five.read([]).shape == (0, 3)


def test_index_of_and_unknown_ids(five: BigFile) -> None:
    assert five.index_of(["s2", "s4"]).tolist() == [1, 3]
    with pytest.raises(UnknownIdError, match=r"2 id\(s\) not in this BigFile: 'x', 'y'") as err:
        five.read(["s1", "x", "y"])
    assert err.value.path.endswith("id.txt")


def test_read_rows_unsorted_and_out_of_range(five: BigFile, matrix: np.ndarray) -> None:
    np.testing.assert_array_equal(five.read_rows([3, 0, 3]), matrix[[3, 0, 3]])
    with pytest.raises(UnknownIdError, match="out of range"):
        five.read_rows([5])


def test_iter_chunks_covers_the_file_contiguously(five: BigFile, matrix: np.ndarray) -> None:
    chunks = list(five.iter_chunks(2))
    assert [(a, b) for a, b, _ in chunks] == [(0, 2), (2, 4), (4, 5)]
    np.testing.assert_array_equal(np.concatenate([c for _, _, c in chunks]), matrix)
    assert not isinstance(chunks[0][2], np.memmap)
    assert five.default_chunk_rows() == 32 * 2**20 // 12
    assert [(a, b) for a, b, _ in five.iter_chunks()] == [(0, 5)]
    with pytest.raises(ValueError):
        list(five.iter_chunks(0))


@pytest.mark.parametrize(
    "ids_text",
    ["a\nb\nc\n", "a\nb\nc", "a b c", "a b c\n", "  a\n\nb \nc\n\n"],
    ids=["newline", "no-final-newline", "space-separated", "space-separated-newline", "blank-lines-and-spaces"],
)
def test_id_file_variants(tmp_path: Path, ids_text: str) -> None:
    folder = make_bigfile(tmp_path / "f", ids_text, "3 2", np.ones((3, 2)))
    assert BigFile(folder).ids == ["a", "b", "c"]


def test_empty_bigfile(tmp_path: Path) -> None:
    bf = BigFile.write(tmp_path / "e", [], np.zeros((0, 4)))
    assert bf.shape == (0, 4) and bf.read([]).shape == (0, 4) and list(bf.iter_chunks(10)) == []


@pytest.mark.parametrize(
    ("ids_text", "shape_text", "nvalues", "error", "pattern"),
    [
        (
            "a\nb\n",
            "2 3",
            5,
            InputFormatError,
            r"feature.bin: size is 20 bytes but shape.txt says 2 x 3 float32, which needs 24 \(truncated\?\)",
        ),
        ("a\nb\n", "2 3", 7, InputFormatError, r"size is 28 bytes"),
        ("a\nb\n", "2 3 1", 6, InputFormatError, r"shape.txt:1: malformed shape"),
        ("a\nb\n", "two 3", 6, InputFormatError, r"shape.txt:1: malformed shape"),
        ("a\nb\n", "2 0", 0, InputFormatError, r"shape.txt:1: feature dimension 0"),
        ("a\nb\nc\n", "2 3", 6, InputFormatError, r"id.txt: 3 ids but shape.txt says 2 rows"),
        ("a\na\n", "2 3", 6, InputFormatError, r"id.txt:2: duplicate id 'a' \(first on line 1\)"),
    ],
    ids=["truncated", "too-long", "shape-3-fields", "shape-not-int", "dim-0", "id-count", "duplicate-ids"],
)
def test_corruption_gives_one_clear_error(
    tmp_path: Path, ids_text: str, shape_text: str, nvalues: int, error: type, pattern: str
) -> None:
    folder = make_bigfile(tmp_path / "bad", ids_text, shape_text, np.ones(nvalues))
    with pytest.raises(error, match=pattern):
        BigFile(folder)


@pytest.mark.parametrize("missing", ["feature.bin", "id.txt", "shape.txt"])
def test_missing_file(tmp_path: Path, missing: str) -> None:
    folder = make_bigfile(tmp_path / "f", "a\n", "1 2", np.ones(2))
    (folder / missing).unlink()
    with pytest.raises(MissingDataError, match=missing):
        BigFile(folder)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(MissingDataError, match="BigFile folder not found"):
        BigFile(tmp_path / "nothing")


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputFormatError, match="3 rows written for 4 ids"):
        with BigFileWriter(tmp_path / "f", ["a", "b", "c", "d"], 2) as writer:
            writer.append(np.ones((3, 2)))
    with pytest.raises(InputFormatError, match="duplicate ids"):
        BigFile.write(tmp_path / "f", ["a", "a"], np.ones((2, 2)))
    with pytest.raises(InputFormatError, match="contains whitespace"):
        BigFile.write(tmp_path / "f", ["a b", "c"], np.ones((2, 2)))
    with pytest.raises(InputFormatError, match=r"block of shape \(2, 3\)"):
        with BigFileWriter(tmp_path / "f", ["a", "b"], 2) as writer:
            writer.append(np.ones((2, 3)))
    assert os.listdir(tmp_path) == []


def test_overwrite_replaces_atomically(tmp_path: Path) -> None:
    BigFile.write(tmp_path / "f", ["a"], np.ones((1, 2)))
    bf = BigFile.write(tmp_path / "f", ["x", "y"], np.zeros((2, 2)))
    assert bf.ids == ["x", "y"] and sorted(os.listdir(tmp_path)) == ["f"]


def test_from_text(tmp_path: Path) -> None:
    src = tmp_path / "feat.txt"
    src.write_text("v1 0.5 1\n\nv2 -2 3e-1\n", encoding="utf-8")
    bf = BigFile.from_text(src, tmp_path / "out")
    assert bf.ids == ["v1", "v2"]
    np.testing.assert_allclose(bf.read(["v2", "v1"]), [[-2.0, 0.3], [0.5, 1.0]])


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("a 1 2\nb 1\n", r"feat.txt:2: 1 values \(expected 2 values as on the first line\)"),
        ("a 1 2\nb 1 x\n", r"feat.txt:2: value is not a number"),
        ("a\n", r"feat.txt:1: line has an id but no values"),
        ("\n\n", r"no feature lines"),
        ("a 1\na 2\n", r"duplicate ids"),
    ],
)
def test_from_text_errors(tmp_path: Path, text: str, pattern: str) -> None:
    src = tmp_path / "feat.txt"
    src.write_text(text, encoding="utf-8")
    with pytest.raises(InputFormatError, match=pattern):
        BigFile.from_text(src, tmp_path / "out")
    assert sorted(os.listdir(tmp_path)) == ["feat.txt"]


def test_from_npy(tmp_path: Path, matrix: np.ndarray) -> None:
    np.save(tmp_path / "a.npy", matrix.astype(np.float64))
    bf = BigFile.from_npy(tmp_path / "a.npy", list("abcde"), tmp_path / "out")
    np.testing.assert_array_equal(bf.read(["e"]), matrix[[4]])
    with pytest.raises(InputFormatError, match="5 rows but 2 ids"):
        BigFile.from_npy(tmp_path / "a.npy", ["a", "b"], tmp_path / "out2")
    np.save(tmp_path / "b.npy", np.ones(3))
    with pytest.raises(InputFormatError, match="2-d"):
        BigFile.from_npy(tmp_path / "b.npy", ["a", "b", "c"], tmp_path / "out3")


def test_cli_convert_and_show(tmp_path: Path, matrix: np.ndarray) -> None:
    runner = CliRunner()
    np.save(tmp_path / "a.npy", matrix)
    (tmp_path / "ids.txt").write_text("a\nb\nc\nd\ne\n")
    result = runner.invoke(
        main, ["features", "convert", str(tmp_path / "a.npy"), str(tmp_path / "bf"), "--ids", str(tmp_path / "ids.txt")]
    )
    assert result.exit_code == 0, result.output
    assert "5 rows x 3 float32" in result.output
    result = runner.invoke(main, ["features", "show", str(tmp_path / "bf")])
    assert result.exit_code == 0 and "first ids: a b c d e" in result.output
    result = runner.invoke(main, ["features", "convert", str(tmp_path / "a.npy"), str(tmp_path / "bf2")])
    assert result.exit_code == 2 and "needs --ids" in result.output and "Traceback" not in result.output
    (tmp_path / "bad.txt").write_text("a 1 2\nb 1\n")
    result = runner.invoke(main, ["features", "convert", str(tmp_path / "bad.txt"), str(tmp_path / "bf3")])
    assert result.exit_code == 2 and result.output.count("\n") == 1 and "bad.txt:2" in result.output


# -- frame-level features -------------------------------------------------------------------------


def test_split_frame_id() -> None:
    assert split_frame_id("shot00008_16_3") == ("shot00008_16", 3)
    assert split_frame_id("video7_10") == ("video7", 10)
    with pytest.raises(ValueError):
        split_frame_id("noframe")


def test_frame_feature_groups_in_frame_order(tmp_path: Path) -> None:
    ids = ["v_a_10", "v_a_2", "v_b_1", "v_a_1"]
    values = np.array([[10.0], [2.0], [100.0], [1.0]])
    BigFile.write(tmp_path / "fr", ids, values)
    frames = FrameFeature(tmp_path / "fr")
    assert frames.video_ids == ["v_a", "v_b"] and len(frames) == 2 and frames.dim == 1
    assert frames.n_frames("v_a") == 3
    out, mask = frames.read(["v_b", "v_a"])
    assert out.shape == (2, 3, 1)
    assert out[:, :, 0].tolist() == [[100.0, 0.0, 0.0], [1.0, 2.0, 10.0]]
    assert mask.tolist() == [[True, False, False], [True, True, True]]
    truncated = FrameFeature(tmp_path / "fr", max_frame=2)
    out, mask = truncated.read(["v_a"])
    assert out[0, :, 0].tolist() == [1.0, 2.0] and mask.all()


def test_frame_feature_errors(tmp_path: Path) -> None:
    BigFile.write(tmp_path / "fr", ["v_1", "v_x"], np.ones((2, 2)))
    with pytest.raises(InputFormatError, match=r"frame id 'v_x' \(id number 2\) has no frame number"):
        FrameFeature(tmp_path / "fr")
    BigFile.write(tmp_path / "ok", ["v_1", "v_2"], np.ones((2, 2)))
    with pytest.raises(UnknownIdError, match="1 video"):
        FrameFeature(tmp_path / "ok").read(["v", "w"])


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    nrows=st.integers(min_value=1, max_value=40),
    dim=st.integers(min_value=1, max_value=9),
    picks=st.lists(st.integers(min_value=0, max_value=10_000), min_size=0, max_size=60),
    chunk=st.integers(min_value=1, max_value=50),
)
def test_round_trip_and_request_order(tmp_path: Path, nrows: int, dim: int, picks: list[int], chunk: int) -> None:
    rng = np.random.default_rng(nrows * 100 + dim)
    matrix = rng.standard_normal((nrows, dim)).astype(np.float32)
    ids = [f"shot{i:05d}_{i % 7}" for i in rng.permutation(nrows)]
    bf = BigFile.write(tmp_path / f"rt_{nrows}_{dim}", ids, matrix)
    rows = [p % nrows for p in picks]
    np.testing.assert_array_equal(bf.read([ids[r] for r in rows]), matrix[rows].reshape(len(rows), dim))
    np.testing.assert_array_equal(np.concatenate([c for _, _, c in bf.iter_chunks(chunk)]), matrix)
