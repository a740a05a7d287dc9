"""Reference checkpoint import: pickled configs via stand-ins, LAFF-ml layout, refusal of foreign globals."""

from __future__ import annotations

import argparse
import collections
import os
import pickle
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from avsbench.errors import ConfigError, InputFormatError
from avsbench.model.checkpoint import load_model
from avsbench.model.reference_import import (
    ReferenceObject,
    convert_reference_state_dict,
    import_reference_checkpoint,
    model_from_reference,
    read_reference_checkpoint,
    reference_vocabularies,
)

FIXTURE = Path(__file__).parent / "fixtures" / "laff_reference"


def _reference_modules() -> dict[str, types.ModuleType]:
    """Fake modules named like the reference code base, with classes of the same names."""
    modules = {name: types.ModuleType(name) for name in ("configs", "configs.laff", "textlib", "txt2vec")}
    for module, names in (
        ("configs.laff", ["config"]),
        ("textlib", ["Vocabulary"]),
        ("txt2vec", ["BowVecNSW", "IndexVec"]),
    ):
        for name in names:
            cls = type(name, (), {"__module__": module, "__qualname__": name})
            setattr(modules[module], name, cls)
    return modules


def _save_like_reference_trainer(
    path: Path, state: dict, bow_words: list[str], gru_words: list[str], vid_feats: list[str]
) -> None:
    modules = _reference_modules()
    saved = {name: sys.modules.get(name) for name in modules}
    sys.modules.update(modules)
    try:
        vocab_cls, bow_cls, idx_cls = (
            modules["textlib"].Vocabulary,
            modules["txt2vec"].BowVecNSW,
            modules["txt2vec"].IndexVec,
        )
        bow_vocab, gru_vocab = vocab_cls(), vocab_cls()
        bow_vocab.word2idx = {w: i for i, w in enumerate(bow_words)}
        bow_vocab.idx2word = {i: w for i, w in enumerate(bow_words)}
        gru_vocab.word2idx = {w: i for i, w in enumerate(gru_words)}
        t2v_bow, t2v_idx = bow_cls(), idx_cls()
        t2v_bow.vocab, t2v_idx.vocab = bow_vocab, gru_vocab
        config = modules["configs.laff"].config()
        config.vid_feats = [np.str_(n) for n in vid_feats]
        config.t2v_bow, config.t2v_idx, config.t2v_w2v = t2v_bow, t2v_idx, None
        config.rnn_size = np.int64(128)
        config.we = np.arange(12, dtype=np.float32).reshape(3, 4)
        config.tags = {"a", "b"}
        bow_vocab.counts = collections.defaultdict(int, {"man": 3})
        opt = argparse.Namespace(trainCollection="tgif-msrvtt10k", config_name="laff", random_seed=2)
        torch.save(
            {"epoch": 7, "model": OrderedDict(state), "best_perf": np.float64(0.5), "config": config, "opt": opt}, path
        )
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


@pytest.fixture(scope="module")
def fixture_checkpoint():
    return torch.load(FIXTURE / "reference_checkpoint.pth.tar", map_location="cpu", weights_only=True)


def test_pickled_reference_config_is_read_with_stand_ins(tmp_path, fixture_checkpoint):
    cfg = fixture_checkpoint["config"]
    path = tmp_path / "model_best.pth.tar"
    _save_like_reference_trainer(
        path, fixture_checkpoint["model"], cfg["bow_vocab_words"], cfg["gru_vocab_words"], cfg["vid_feats"]
    )
    assert "configs.laff" not in sys.modules
    with pytest.raises(pickle.UnpicklingError):
        torch.load(path, map_location="cpu", weights_only=True)
    checkpoint = read_reference_checkpoint(path)
    assert isinstance(checkpoint.config, ReferenceObject)
    assert type(checkpoint.config).__module__ == "configs.laff"
    assert checkpoint.opt.trainCollection == "tgif-msrvtt10k"
    assert [str(v) for v in checkpoint.config.vid_feats] == cfg["vid_feats"]
    assert float(checkpoint.best_perf) == 0.5
    np.testing.assert_array_equal(checkpoint.config.we, np.arange(12, dtype=np.float32).reshape(3, 4))
    assert checkpoint.config.tags == {"a", "b"}
    assert checkpoint.config.t2v_bow.vocab.counts == {"man": 3}
    bow, gru = reference_vocabularies(checkpoint)
    assert bow == cfg["bow_vocab_words"] and gru == cfg["gru_vocab_words"]
    out = import_reference_checkpoint(path, tmp_path / "ours")
    assert out.source["opt"]["trainCollection"] == "tgif-msrvtt10k"
    assert out.source["epoch"] == 7
    loaded = load_model(tmp_path / "ours")
    assert loaded.text_pipeline.bow_vocab == cfg["bow_vocab_words"]
    assert [s.name for s in loaded.config.text_features][-1] == "clip"
    named = import_reference_checkpoint(path, tmp_path / "named", clip_feature="CLIP_ViT-B32")
    assert named.text_features[-1].name == "CLIP_ViT-B32" and named.text_features[-1].reference_name == "CLIP_encoder"


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_foreign_globals_are_refused(tmp_path, fixture_checkpoint):
    path = tmp_path / "evil.pth.tar"
    torch.save({"model": fixture_checkpoint["model"], "config": _Exploit()}, path)
    with pytest.raises(InputFormatError, match="refusing to load global"):
        read_reference_checkpoint(path)


def test_import_without_vocabulary_is_a_clear_error(tmp_path, fixture_checkpoint):
    path = tmp_path / "novocab.pth.tar"
    torch.save({"model": fixture_checkpoint["model"], "config": {}, "opt": {}}, path)
    with pytest.raises(ConfigError, match="bag-of-words vocabulary"):
        import_reference_checkpoint(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_state_dict_keys_are_reported(fixture_checkpoint):
    state = dict(fixture_checkpoint["model"])
    state["vis_net.something_new.weight"] = torch.zeros(3)
    with pytest.raises(ConfigError, match="not understood"):
        convert_reference_state_dict(state)


# ---------------------------------------------------------------- LAFF-ml layout

HEADS, HEAD_DIM = 2, 16
COMMON = HEADS * HEAD_DIM


def _bn(prefix: str, gen: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        f"{prefix}.bn1.weight": torch.rand(COMMON, generator=gen) + 0.5,
        f"{prefix}.bn1.bias": torch.randn(COMMON, generator=gen) * 0.2,
        f"{prefix}.bn1.running_mean": torch.randn(COMMON, generator=gen) * 0.3,
        f"{prefix}.bn1.running_var": torch.rand(COMMON, generator=gen) + 0.2,
        f"{prefix}.bn1.num_batches_tracked": torch.tensor(10),
    }


def _heads(prefix: str, gen: torch.Generator, dim: int = HEAD_DIM, count: int = HEADS) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    for i in range(count):
        out[f"{prefix}.{i}.embedding_common.0.weight"] = torch.randn(1, dim, generator=gen)
        out[f"{prefix}.{i}.embedding_common.0.bias"] = torch.randn(1, generator=gen)
        out[f"{prefix}.{i}.global_emb_weight_net.weight"] = torch.randn(1, 1, generator=gen)
    return out


def _laff_ml_state(gen: torch.Generator) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    state.update(_bn("vis_net.Frame_clip,ft", gen))
    for name, dim in (("c3d,os", 24), ("tf.768", 20)):
        state[f"vis_net.{name}.fc1.weight"] = torch.randn(COMMON, dim, generator=gen) * 0.3
        state[f"vis_net.{name}.fc1.bias"] = torch.randn(COMMON, generator=gen) * 0.1
        state.update(_bn(f"vis_net.{name}", gen))
    state.update(_heads("vis_net.vis_attention_layer.attention_layer", gen))
    state["vis_net.vis_attention_layer.layer_norm.weight"] = torch.randn(HEAD_DIM, generator=gen)
    state["vis_net.vis_attention_layer.layer_norm.bias"] = torch.randn(HEAD_DIM, generator=gen)
    state.update(_heads("vis_net.frame_attention.Frame_clip,ft", gen, count=1))
    for enc, dim in (("w2v_encoder", 30), ("bow_encoder", 12)):
        state[f"txt_net.transform_layer.{enc}_transform.fc1.weight"] = torch.randn(COMMON, dim, generator=gen) * 0.3
        state[f"txt_net.transform_layer.{enc}_transform.fc1.bias"] = torch.randn(COMMON, generator=gen) * 0.1
        state.update(_bn(f"txt_net.transform_layer.{enc}_transform", gen))
    state.update(_bn("txt_net.transform_layer.CLIP_encoder_transform", gen))
    state.update(_heads("txt_net.attention_layer.attention_layer", gen))
    return state


def _bn_eval(x: torch.Tensor, state: dict, prefix: str) -> torch.Tensor:
    g = lambda p: state[f"{prefix}.bn1.{p}"]  # noqa: E731
    return (x - g("running_mean")) / torch.sqrt(g("running_var") + 1e-5) * g("weight") + g("bias")


def _independent_video_embedding(
    state: dict, frames: torch.Tensor, mask: torch.Tensor, feats: dict[str, torch.Tensor]
) -> torch.Tensor:
    """Straightforward per-video, per-head computation written from laff.md, for comparison."""
    out = []
    for v in range(frames.shape[0]):
        real = frames[v][mask[v]]
        w = state["vis_net.frame_attention.Frame_clip,ft.0.embedding_common.0.weight"][0]
        b = state["vis_net.frame_attention.Frame_clip,ft.0.embedding_common.0.bias"][0]
        a = torch.softmax(real @ w + b, dim=0)
        pooled = (a[:, None] * real).sum(0)
        pooled = pooled / (pooled.norm() + 1e-14)
        mapped = [_bn_eval(pooled.repeat(HEADS), state, "vis_net.Frame_clip,ft")]
        for name in ("c3d,os", "tf.768"):
            y = torch.tanh(feats[name][v] @ state[f"vis_net.{name}.fc1.weight"].T + state[f"vis_net.{name}.fc1.bias"])
            mapped.append(_bn_eval(y, state, f"vis_net.{name}"))
        per_head = []
        for h in range(HEADS):
            xs = torch.stack([m[h * HEAD_DIM : (h + 1) * HEAD_DIM] for m in mapped])
            hw = state[f"vis_net.vis_attention_layer.attention_layer.{h}.embedding_common.0.weight"][0]
            hb = state[f"vis_net.vis_attention_layer.attention_layer.{h}.embedding_common.0.bias"][0]
            a = torch.softmax(xs @ hw + hb, dim=0)
            e = (a[:, None] * xs).sum(0)
            per_head.append(e / (e.norm() + 1e-14))
        out.append(torch.stack(per_head))
    return torch.stack(out)


def test_laff_ml_layout_is_inferred_and_computed():
    gen = torch.Generator().manual_seed(3)
    state = _laff_ml_state(gen)
    converted = convert_reference_state_dict(state)
    config = converted.config
    assert [(s.name, s.kind, s.transform, s.batch_norm, s.reference_name) for s in config.video_features] == [
        ("clip,ft", "frame", "tile", True, "Frame_clip,ft"),
        ("c3d,os", "video", "linear", True, None),
        ("tf.768", "video", "linear", True, None),
    ]
    assert [(s.kind, s.dim, s.batch_norm) for s in config.text_features] == [
        ("bow", 12, True),
        ("w2v", 30, True),
        ("precomputed", HEAD_DIM, True),
    ]
    model = model_from_reference(converted)
    n, max_frames = 5, 6
    frames = torch.randn(n, max_frames, HEAD_DIM, generator=gen)
    counts = torch.tensor([1, 6, 3, 2, 5])
    mask = torch.arange(max_frames)[None, :] < counts[:, None]
    frames = frames * mask[..., None]
    feats = {"c3d,os": torch.randn(n, 24, generator=gen), "tf.768": torch.randn(n, 20, generator=gen)}
    inputs = {"Frame_clip,ft": frames, "Frame_clip,ft.mask": mask, **feats}
    expected = _independent_video_embedding(state, frames, mask, feats)
    with torch.no_grad():
        masked = model.encode_videos(inputs)
        masked_weights = model.frame_attention(inputs)["clip,ft"]
        np.testing.assert_allclose(masked.numpy(), expected.numpy(), atol=1e-5)
        assert torch.all(masked_weights[~mask] == 0)
        unmasked_model = model_from_reference(converted, frame_mask=False)
        unmasked = unmasked_model.encode_videos(inputs)
        unmasked_weights = unmasked_model.frame_attention(inputs)["clip,ft"]
    np.testing.assert_allclose(unmasked.numpy(), masked.numpy(), atol=1e-5)
    assert float(unmasked_weights[0, 0]) < 0.9 < float(masked_weights[0, 0])


def test_cli_import_and_info(tmp_path):
    from avsbench.cli import main

    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "model",
            "import-laff",
            str(FIXTURE / "reference_checkpoint.pth.tar"),
            "--out",
            str(tmp_path / "m"),
            "--w2v",
            str(FIXTURE / "w2v_bigfile"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m" / "weights.safetensors").is_file()
    info = runner.invoke(main, ["model", "info", str(tmp_path / "m")])
    assert info.exit_code == 0, info.output
    assert "tiny96_resnext101_32x48d_wsl,avgpool,os" in info.output and "96" in info.output
    missing = runner.invoke(
        main, ["model", "import-laff", str(tmp_path / "nope.pth.tar"), "--out", str(tmp_path / "x")]
    )
    assert missing.exit_code == 2 and "not found" in missing.output and "Traceback" not in missing.output


def test_laff_ml_import_writes_a_model_folder(tmp_path):
    state = _laff_ml_state(torch.Generator().manual_seed(5))
    path = tmp_path / "ml.pth.tar"
    torch.save(
        {"epoch": 1, "model": state, "config": {"bow_vocab_words": [f"w{i}" for i in range(12)]}, "opt": {}}, path
    )
    config = import_reference_checkpoint(path, tmp_path / "masked")
    unmasked = import_reference_checkpoint(path, tmp_path / "unmasked", frame_mask=False)
    assert config.frame_mask and not unmasked.frame_mask and config.source["layout"] == "LAFF-ml"
    frames = torch.randn(3, 4, HEAD_DIM)
    mask = torch.tensor([[True, False, False, False], [True, True, True, True], [True, True, False, False]])
    frames = frames * mask[..., None]
    inputs = {"clip,ft": frames, "clip,ft.mask": mask, "c3d,os": torch.randn(3, 24), "tf.768": torch.randn(3, 20)}
    with torch.no_grad():
        a, b = load_model(tmp_path / "masked").model, load_model(tmp_path / "unmasked").model
        np.testing.assert_allclose(a.encode_videos(inputs).numpy(), b.encode_videos(inputs).numpy(), atol=1e-5)
        assert float(a.frame_attention(inputs)["clip,ft"][0, 0]) == pytest.approx(1.0)
        assert float(b.frame_attention(inputs)["clip,ft"][0, 0]) < 1.0
