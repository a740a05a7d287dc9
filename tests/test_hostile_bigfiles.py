"""Hostile BigFiles: every broken feature folder is one clear error naming the file (and line), exit 2,
no traceback, bounded memory, nothing written (issue 11, hostile suite)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hostile import LIMIT_TORCH_MB, assert_one_clear_error, run_cli_limited, tree_snapshot

from avsbench.data.bigfile import BigFile

IDS = [f"shot{v:05d}_{s}" for v in range(1, 4) for s in range(1, 5)]  # 12 shots
DIM = 4


def good_bigfile(folder: Path) -> Path:
    BigFile.write(folder, IDS, np.arange(len(IDS) * DIM, dtype=np.float32).reshape(len(IDS), DIM))
    return folder


def _shape(text: str | bytes) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / "shape.txt").write_bytes(text if isinstance(text, bytes) else text.encode())

    return damage


def _ids(data: bytes) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        (folder / "id.txt").write_bytes(data)

    return damage


def _truncate(folder: Path) -> None:
    with open(folder / "feature.bin", "r+b") as fh:
        fh.truncate(len(IDS) * DIM * 4 - 6)


def _extend(folder: Path) -> None:
    with open(folder / "feature.bin", "ab") as fh:
        fh.write(b"\0" * 16)


def _huge_shape_file(folder: Path) -> None:
    with open(folder / "shape.txt", "wb") as fh:  # 64 MB of digits: must not be read whole
        fh.write(b"9" * (64 << 20))


def _huge_id_file(folder: Path) -> None:
    with open(folder / "id.txt", "wb") as fh:  # 600 MB of one id line, sparse: must not be read whole
        fh.truncate(600 << 20)


def _id_lines(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode()


CASES: dict[str, tuple[Callable[[Path], None], tuple[str, ...]]] = {
    "truncated feature.bin": (_truncate, ("feature.bin", "truncated")),
    "feature.bin too long": (_extend, ("feature.bin", "bytes")),
    "shape with a huge N": (
        _shape("99999999999999999999999 4\n"),
        ("feature.bin", "shape.txt says 99999999999999999999999 x 4"),
    ),
    "shape with a huge D": (_shape("12 4000000000\n"), ("shape.txt:1", "dimension")),
    "shape with N*D*4 overflowing 64 bits": (_shape("4611686018427387904 4\n"), ("feature.bin", "shape.txt says")),
    "negative shape": (_shape("-12 4\n"), ("shape.txt:1", "malformed")),
    "shape with garbage": (_shape("twelve four\n"), ("shape.txt:1", "malformed")),
    "shape with three numbers": (_shape("12 4 1\n"), ("shape.txt:1",)),
    "empty shape": (_shape(""), ("shape.txt:1",)),
    "zero dimension": (_shape("12 0\n"), ("shape.txt:1", "dimension")),
    "non-ASCII digits in shape": (_shape("١٢ 4\n"), ("shape.txt:1", "malformed")),
    "binary shape": (_shape(b"\xff\xfe\x00\x01\x80"), ("shape.txt:1", "malformed")),
    "huge shape.txt": (_huge_shape_file, ("shape.txt",)),
    "missing shape.txt": (lambda f: (f / "shape.txt").unlink(), ("shape.txt", "not found")),
    "fewer ids": (_ids(_id_lines(IDS[:-1])), ("id.txt", "11 ids", "12 rows")),
    "more ids": (_ids(_id_lines([*IDS, "shot99999_1"])), ("id.txt", "13 ids", "12 rows")),
    "duplicate id": (_ids(_id_lines([*IDS[:7], IDS[2], *IDS[8:]])), ("id.txt:8", "duplicate id 'shot00001_3'")),
    "non-UTF-8 id": (_ids(_id_lines(IDS[:5]) + b"shot\xff\xfe_1\n" + _id_lines(IDS[6:])), ("id.txt:6", "UTF-8")),
    "huge id.txt": (_huge_id_file, ("id.txt",)),
    "missing id.txt": (lambda f: (f / "id.txt").unlink(), ("id.txt", "not found")),
    "missing feature.bin": (lambda f: (f / "feature.bin").unlink(), ("feature.bin", "not found")),
    "feature.bin is a folder": (
        lambda f: ((f / "feature.bin").unlink(), (f / "feature.bin").mkdir()),
        ("feature.bin",),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_features_show_on_a_hostile_bigfile(tmp_path: Path, case: str) -> None:
    damage, needles = CASES[case]
    folder = good_bigfile(tmp_path / "feat")
    damage(folder)
    before = tree_snapshot(tmp_path) if case not in ("huge id.txt", "huge shape.txt") else None
    done = run_cli_limited(["features", "show", str(folder)], cwd=tmp_path)
    line = assert_one_clear_error(done, str(folder), *needles)
    assert "\n" not in line and len(line) < 400  # no file contents echoed
    if before is not None:
        assert tree_snapshot(tmp_path) == before


def test_the_good_bigfile_is_shown(tmp_path: Path) -> None:
    done = run_cli_limited(["features", "show", str(good_bigfile(tmp_path / "feat"))], cwd=tmp_path)
    assert done.returncode == 0 and "12 rows x 4 float32" in done.stdout, done.stderr


def test_collection_info_on_a_missing_collection(tmp_path: Path) -> None:
    before = tree_snapshot(tmp_path)
    done = run_cli_limited(["collection", "info", "nope", "--rootpath", str(tmp_path)], cwd=tmp_path)
    assert_one_clear_error(done, str(tmp_path / "nope"), "not found")
    assert tree_snapshot(tmp_path) == before


@pytest.fixture(scope="module")
def ranked_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny synthetic V3C1 and a model for it."""
    import torch

    from avsbench.data.synthetic import generate_demo
    from avsbench.model.checkpoint import save_model
    from avsbench.model.config import FeatureSpec, ModelConfig
    from avsbench.model.laff import LaffModel

    root = tmp_path_factory.mktemp("hostile_rank")
    generate_demo(root, n_shots=400, n_train_videos=10, n_val_videos=10, frame_features=False)
    torch.manual_seed(0)
    config = ModelConfig(
        video_features=[FeatureSpec("demo_clip512", 512, "video", transform="tile", dropout=0.0)],
        text_features=[FeatureSpec("demo_clip512", 512, "precomputed", transform="tile", dropout=0.0)],
        common_dim=1024,
        heads=2,
    )
    return root, save_model(root / "model", LaffModel(config).eval())


def _rank(root: Path, model: Path, out: Path):
    args = [
        "rank",
        "--year",
        "2019",
        "--model",
        str(model),
        "--rootpath",
        str(root),
        "--out",
        str(out),
        "--device",
        "cpu",
    ]
    return run_cli_limited(
        [*args, "--precision", "fp32", "--top-k", "10", "--no-score"], limit_mb=LIMIT_TORCH_MB, timeout=300
    )


def test_rank_with_a_feature_of_the_wrong_dimension(ranked_root: tuple[Path, Path], tmp_path: Path) -> None:
    """A feature whose shape.txt (and data) has another dimension than the model: named, nothing written."""
    root, model = ranked_root
    folder = root / "v3c1" / "FeatureData" / "demo_clip512"
    saved = tmp_path / "saved"
    folder.rename(saved)
    try:
        shots = BigFile(saved).ids
        BigFile.write(folder, shots, np.zeros((len(shots), 256), dtype=np.float32))
        done = _rank(root, model, tmp_path / "runs")
        assert_one_clear_error(done, str(folder / "shape.txt"), "256-d", "expects 512")
        assert not (tmp_path / "runs").exists()
    finally:
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        saved.rename(folder)


def test_rank_with_a_feature_missing_shots(ranked_root: tuple[Path, Path], tmp_path: Path) -> None:
    """A feature lacking some shots of the collection: the ids named, nothing written."""
    root, model = ranked_root
    folder = root / "v3c1" / "FeatureData" / "demo_clip512"
    saved = tmp_path / "saved"
    folder.rename(saved)
    try:
        full = BigFile(saved)
        keep = full.ids[:-3]
        BigFile.write(folder, keep, full.read(keep))
        done = _rank(root, model, tmp_path / "runs")
        assert_one_clear_error(done, str(folder / "id.txt"), "3 id(s) not in this BigFile", repr(full.ids[-1]))
        assert not (tmp_path / "runs").exists()
    finally:
        if folder.exists():
            import shutil

            shutil.rmtree(folder)
        saved.rename(folder)


CONVERT_CASES: dict[str, tuple[str, bytes, tuple[str, ...]]] = {
    "non-UTF-8 line": ("feat.txt", b"a 1 2\nb\xff 3 4\n", ("feat.txt:2", "UTF-8")),
    "NaN value": ("feat.txt", b"a 1 2\n\n\nb nan 4\n", ("feat.txt:4", "nan", "not a finite float32")),
    "value beyond float32": ("feat.txt", b"a 1 2\nb 1e39 4\n", ("feat.txt:2", "1e+39")),
    "one huge line": ("feat.txt", b"a " + b"1" * (9 << 20), ("feat.txt:1", "line longer than")),
    "ragged lines": ("feat.txt", b"a 1 2\nb 1\n", ("feat.txt:2", "1 values")),
}


@pytest.mark.parametrize("case", list(CONVERT_CASES))
def test_features_convert_of_a_hostile_text_file(tmp_path: Path, case: str) -> None:
    name, data, needles = CONVERT_CASES[case]
    (tmp_path / name).write_bytes(data)
    before = tree_snapshot(tmp_path)
    done = run_cli_limited(["features", "convert", name, "out"], cwd=tmp_path)
    assert_one_clear_error(done, *needles)
    assert tree_snapshot(tmp_path) == before


def test_features_convert_of_an_npy_with_inf(tmp_path: Path) -> None:
    matrix = np.ones((5, 3))
    matrix[3, 1] = np.inf
    np.save(tmp_path / "a.npy", matrix)
    (tmp_path / "ids.txt").write_text("a\nb\nc\nd\ne\n")
    before = tree_snapshot(tmp_path)
    done = run_cli_limited(["features", "convert", "a.npy", "out", "--ids", "ids.txt"], cwd=tmp_path)
    assert_one_clear_error(done, "a.npy", "inf (row 3, column 1)")
    assert tree_snapshot(tmp_path) == before
