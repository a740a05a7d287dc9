"""Hostile model folders (issue 11 items 10 and 11): ``model info`` on each fails with one clear
error (exit 2, no traceback), within a small address-space limit, fast, and writes nothing."""

from __future__ import annotations

import json
import struct
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hostile import LIMIT_TORCH_MB, assert_one_clear_error, run_cli_limited, tree_snapshot

from avsbench.model.checkpoint import save_model
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel

VOCAB = ["apple", "ball", "cat", "dog", "egg"]


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(
        video_features=[FeatureSpec("vid_a", 12, "video")],
        text_features=[FeatureSpec("bow", 5, "bow")],
        common_dim=16,
        heads=2,
    )
    return save_model(tmp_path_factory.mktemp("good") / "model", LaffModel(config).eval(), bow_vocab=VOCAB)


def edit_config(**changes: object) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        data = json.loads((folder / "config.json").read_text())
        data.update(changes)
        (folder / "config.json").write_text(json.dumps(data, indent=2))
        (folder / "manifest.json").unlink()

    return apply


def huge_header(folder: Path) -> None:
    (folder / "weights.safetensors").write_bytes(struct.pack("<Q", 1 << 60) + b"{}")
    (folder / "manifest.json").unlink()


def garbage_weights(folder: Path) -> None:
    (folder / "weights.safetensors").write_bytes(b"\x00" * 100)
    (folder / "manifest.json").unlink()


def big_dims_small_weights(folder: Path) -> None:
    # within the bounds, but it would take 65536 x 4M floats (1 TB) to build: the header check stops it
    edit_config(common_dim=65536, heads=2, video_features=[{"name": "vid_a", "dim": 4_000_000, "kind": "video"}])(
        folder
    )


CASES = {
    "common_dim_262144": (edit_config(common_dim=262144), ["config.json", "common_dim is 262144"]),
    "heads_as_string": (edit_config(heads="4"), ["config.heads is str"]),
    "dim_as_float": (edit_config(common_dim=512.0), ["config.common_dim is float"]),
    "null_field": (edit_config(fusion=None), ["config.fusion is null"]),
    "feature_not_an_object": (edit_config(video_features=[7]), ["video_features[0] is not an object"]),
    "vocab_outside": (edit_config(bow_vocab_file="/etc/passwd"), ["vocabulary file '/etc/passwd' is not a plain name"]),
    "vocab_dotdot": (edit_config(bow_vocab_file="../../../etc/passwd"), ["is not a plain name"]),
    "feature_name_path": (
        edit_config(video_features=[{"name": "../x", "dim": 12, "kind": "video"}]),
        ["video feature name '../x'"],
    ),
    "huge_header": (huge_header, ["weights.safetensors", "bad header length"]),
    "garbage_weights": (garbage_weights, ["weights.safetensors", "not a safetensors file"]),
    "big_dims_small_weights": (big_dims_small_weights, ["weights do not match config.json"]),
}


# Each case starts a child that imports torch (seconds on a busy box): three run by default, all with -m slow.
FAST_CASES = ("common_dim_262144", "heads_as_string", "vocab_outside")


@pytest.mark.parametrize(
    "case", [name if name in FAST_CASES else pytest.param(name, marks=pytest.mark.slow) for name in sorted(CASES)]
)
def test_hostile_model_folder_is_one_clear_error(case: str, good_folder: Path, tmp_path: Path) -> None:
    make, needles = CASES[case]
    folder = tmp_path / "model"
    folder.mkdir()
    for path in good_folder.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    make(folder)
    before = tree_snapshot(tmp_path)
    started = time.perf_counter()
    done = run_cli_limited(["model", "info", str(folder)], limit_mb=LIMIT_TORCH_MB, cwd=tmp_path)
    line = assert_one_clear_error(done, *needles)
    assert time.perf_counter() - started < 60
    assert "root:" not in done.stderr and "root:" not in line
    assert tree_snapshot(tmp_path) == before
