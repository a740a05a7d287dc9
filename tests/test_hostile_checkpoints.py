"""Hostile reference checkpoints and CLIP files for ``model import-laff`` (issue 11 item 9, issue 10).

Each one must end in exit 2 with one ``avsbench: error:`` line, no traceback, under an
address-space limit, and write nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from clip_laff_layout import laff_state_with_clip, save_checkpoint
from hostile import LIMIT_TORCH_MB, assert_one_clear_error, run_cli_limited, tree_snapshot

from avsbench.errors import InputFormatError
from avsbench.model.clip_text import ClipTextDims, random_text_tower_state

SMALL = ClipTextDims(embed=64, width=64, heads=1, layers=1, context=77, vocab=49408)


class _Call:
    """Pickles as ``func(*args)``: lets a test write the globals a hostile file would use."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _laff_state(clip_model: dict | None = None) -> dict:
    clip_model = random_text_tower_state(SMALL, seed=1) if clip_model is None else clip_model
    return laff_state_with_clip(clip_model, heads=2, video_dims={"feat": 16}, head_dim=SMALL.embed)


def _import(tmp_path: Path, checkpoint: Path, *extra: str) -> None:
    before = tree_snapshot(tmp_path)
    done = run_cli_limited(
        ["model", "import-laff", str(checkpoint), "--out", str(tmp_path / "m"), *extra], limit_mb=LIMIT_TORCH_MB
    )
    return done, before


def _assert_refused(tmp_path: Path, checkpoint: Path, *needles: str, extra: tuple[str, ...] = ()) -> None:
    done, before = _import(tmp_path, checkpoint, *extra)
    assert_one_clear_error(done, *needles)
    assert tree_snapshot(tmp_path) == before and not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    "payload",
    [
        _Call(list, _Call(bytes, 3_000_000_000)),
        _Call(bytearray, 3_000_000_000),
        _Call(str, [[1] * 30] * 30),
        _Call(set, [[1, 2]]),
    ],
    ids=["list-bytes-3GB", "bytearray-3GB", "str-of-nested", "set-of-unhashable"],
)
def test_pickled_config_bombs_are_refused(tmp_path: Path, payload: _Call) -> None:
    path = tmp_path / "bomb.pth.tar"
    torch.save({"model": {}, "config": payload, "epoch": 1}, path)
    assert path.stat().st_size < 5_000
    _assert_refused(tmp_path, path, "bomb.pth.tar", "cannot read reference checkpoint")


def test_numpy_reconstruct_with_a_huge_shape_is_refused(tmp_path: Path) -> None:
    import numpy as np

    reconstruct = np._core.multiarray._reconstruct if hasattr(np, "_core") else np.core.multiarray._reconstruct
    path = tmp_path / "numpy.pth.tar"
    torch.save({"model": {}, "config": _Call(reconstruct, np.ndarray, (3_000_000_000,), b"b")}, path)
    _assert_refused(tmp_path, path, "refusing numpy _reconstruct")


def test_zero_stride_tensor_is_refused(tmp_path: Path) -> None:
    state = _laff_state()
    state["vis_net.VisMutiTransformNet.feat.fc1.weight"] = torch.zeros(1).as_strided((40_000, 40_000), (0, 0))
    path = tmp_path / "strided.pth.tar"
    save_checkpoint(path, state)
    _assert_refused(tmp_path, path, "spans more memory than it stores")


def test_partial_clip_model_keys_named_from_the_cli(tmp_path: Path) -> None:
    clip_model = random_text_tower_state(SMALL, seed=1)
    del clip_model["ln_final.bias"], clip_model["transformer.resblocks.0.mlp.c_proj.weight"]
    path = tmp_path / "partial.pth.tar"
    save_checkpoint(path, _laff_state(clip_model))
    _assert_refused(tmp_path, path, "ClipModel.ln_final.bias", "ClipModel.transformer.resblocks.0.mlp.c_proj.weight")


def test_clip_width_not_a_multiple_of_64_from_the_cli(tmp_path: Path) -> None:
    clip_model = random_text_tower_state(ClipTextDims(embed=64, width=96, heads=1, layers=1, context=77, vocab=49408))
    path = tmp_path / "w96.pth.tar"
    save_checkpoint(path, _laff_state(clip_model))
    _assert_refused(tmp_path, path, "width 96 is not a multiple of 64")


def test_clip_weights_file_bomb_and_foreign_architecture(tmp_path: Path) -> None:
    path = tmp_path / "laff.pth.tar"
    save_checkpoint(path, _laff_state())
    bomb = tmp_path / "ft_bomb.pth.tar"
    torch.save({"model": {}, "opt": _Call(list, _Call(bytes, 3_000_000_000))}, bomb)
    _assert_refused(tmp_path, path, "ft_bomb.pth.tar", extra=("--clip-weights", str(bomb)))
    other = random_text_tower_state(ClipTextDims(embed=32, width=64, heads=1, layers=1, context=77, vocab=49408))
    foreign = tmp_path / "ft_other.pth.tar"
    torch.save({"model": {"clip_model." + k: v for k, v in other.items()}}, foreign)
    _assert_refused(tmp_path, path, "ft_other.pth.tar", "32-d features", extra=("--clip-weights", str(foreign)))


def test_memory_error_is_one_clear_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from avsbench.model import reference_import

    path = tmp_path / "any.pth.tar"
    save_checkpoint(path, _laff_state())

    def out_of_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(reference_import.torch, "load", out_of_memory)
    with pytest.raises(InputFormatError, match="not enough memory"):
        reference_import.read_reference_checkpoint(path)


def test_shared_nested_options_are_summarised_quickly(tmp_path: Path) -> None:
    from avsbench.model.reference_import import import_reference_checkpoint

    nested: list = [1]
    for _ in range(12):
        nested = [nested] * 40  # 40**12 leaves when walked naively; a few hundred bytes pickled
    path = tmp_path / "opt.pth.tar"
    torch.save({"model": _laff_state(), "opt": {"deep": nested}, "epoch": 1}, path)
    config = import_reference_checkpoint(path, tmp_path / "m")
    assert "deep" in config.source["opt"]
