"""Ranking with a LAFF model whose CLIP text feature is computed online (``--clip-text``).

A checkpoint in the released layout (CLIP under ``txt_net.encoder.CLIP_encoder.ClipModel.``,
LAFF's CLIP text path and one video path per demo feature) is imported, then a copy of the
small demo collection without any precomputed CLIP text file is ranked from the CLI. The run must
be identical to the run ranked from the same vectors given as a precomputed BigFile.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from clip_laff_layout import laff_state_with_clip, save_checkpoint

from avsbench.cli import main
from avsbench.data.bigfile import BigFile
from avsbench.errors import ConfigError
from avsbench.model.checkpoint import load_model
from avsbench.model.clip_text import ClipTextDims, ClipTextEncoder, random_text_tower_state
from avsbench.model.clip_text_source import plan_text_sources

FEATURE = "clip_b32"
DEMO_VIDEO = {"demo_clip512": 512, "demo_noisy1024": 1024, "demo_partial768": 768}
SMALL = ClipTextDims(embed=64, width=128, heads=2, layers=2, context=77, vocab=49408)
VIT_B32 = ClipTextDims(embed=512, width=512, heads=8, layers=12, context=77, vocab=49408)


def _demo_copy(demo_root: Path, root: Path) -> Path:
    """A data root whose v3c1 shares the demo's features and shots but has its own TextData (no CLIP file)."""
    (root / "v3c1" / "TextData").mkdir(parents=True)
    for name in ("FeatureData", "VideoSets"):
        (root / "v3c1" / name).symlink_to(demo_root / "v3c1" / name)
    shutil.copy(demo_root / "v3c1" / "SYNTHETIC.md", root / "v3c1" / "SYNTHETIC.md")
    for path in (demo_root / "v3c1" / "TextData").iterdir():
        if path.is_file():
            shutil.copy(path, root / "v3c1" / "TextData" / path.name)
    return root


def _import_model(tmp_path: Path, dims: ClipTextDims, heads: int) -> Path:
    clip_model = random_text_tower_state(dims, seed=11)
    clip_model["logit_scale"] = torch.tensor(4.6052)  # non-text keys a real CLIP has
    clip_model["visual.proj"] = torch.zeros(4, dims.embed)
    state = laff_state_with_clip(clip_model, heads=heads, video_dims=DEMO_VIDEO, seed=3)
    save_checkpoint(tmp_path / "laff.pth.tar", state)
    done = _cli(
        [
            "model",
            "import-laff",
            str(tmp_path / "laff.pth.tar"),
            "--out",
            str(tmp_path / "model"),
            "--clip-feature",
            FEATURE,
        ]
    )
    assert "2 visual keys skipped" not in done.output  # logit_scale is not a visual key
    assert "1 visual keys skipped" in done.output
    (tmp_path / "laff.pth.tar").unlink()
    return tmp_path / "model"


def _cli(args: list[str], exit_code: int = 0):
    done = CliRunner().invoke(main, args)
    assert done.exit_code == exit_code, done.output
    return done


def _rank(model: Path, root: Path, out: Path, *extra: str, exit_code: int = 0):
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
        "--run-id",
        "clip",
        "--device",
        "cpu",
        "--precision",
        "fp32",
        "--no-score",
        *extra,
    ]
    return _cli(args, exit_code)


def _sidecar_sources(out: Path) -> list[dict]:
    sidecar = next(out.glob("*.json"))
    return json.loads(sidecar.read_text(encoding="utf-8"))["text_features"]


def _online_equals_precomputed(tmp_path: Path, demo_root: Path, dims: ClipTextDims, heads: int) -> None:
    root = _demo_copy(demo_root, tmp_path / "root")
    model = _import_model(tmp_path, dims, heads)
    online = _rank(model, root, tmp_path / "online")
    assert (
        f"text feature {FEATURE}: online, reference truncation (auto: no TextData/{FEATURE}/ BigFile)" in online.output
    )
    [record] = _sidecar_sources(tmp_path / "online")
    assert record["source"] == "online" and record["tower"] == dims.to_dict() and record["texts_over_context"] == []

    topics = [line.split(" ", 1) for line in (root / "v3c1" / "TextData" / "tv19.avs.txt").read_text().splitlines()]
    vectors = load_model(model).text_pipeline.clip_features([text for _, text in topics])
    BigFile.write(root / "v3c1" / "TextData" / FEATURE, [number for number, _ in topics], vectors)
    precomputed = _rank(model, root, tmp_path / "precomputed")
    assert f"text feature {FEATURE}: {root / 'v3c1' / 'TextData' / FEATURE}" in precomputed.output
    assert _sidecar_sources(tmp_path / "precomputed")[0]["source"] == "precomputed"
    run_online = (tmp_path / "online" / "clip.tv19.txt").read_bytes()
    assert run_online == (tmp_path / "precomputed" / "clip.tv19.txt").read_bytes()
    assert len(run_online.splitlines()) == 30 * 1000

    forced = _rank(model, root, tmp_path / "forced", "--clip-text", "online")
    assert (tmp_path / "forced" / "clip.tv19.txt").read_bytes() == run_online
    assert "(--clip-text online)" in forced.output


def test_online_clip_text_ranks_like_the_precomputed_bigfile(tmp_path: Path, small_demo_root: Path) -> None:
    _online_equals_precomputed(tmp_path, small_demo_root, SMALL, heads=2)


@pytest.mark.slow
def test_released_layout_at_full_size_online_equals_precomputed(tmp_path: Path, small_demo_root: Path) -> None:
    """ViT-B/32's text tower (width 512, 12 layers, 8 heads) and LAFF's 8 x 512 heads, random weights."""
    _online_equals_precomputed(tmp_path, small_demo_root, VIT_B32, heads=8)


def test_precomputed_without_a_bigfile_and_online_without_a_tower(tmp_path: Path, small_demo_root: Path) -> None:
    root = _demo_copy(small_demo_root, tmp_path / "root")
    model = _import_model(tmp_path, SMALL, heads=2)
    done = _rank(model, root, tmp_path / "out", "--clip-text", "precomputed", exit_code=2)
    assert f"precomputed text feature '{FEATURE}' is missing" in done.output and "Traceback" not in done.output
    weights = load_model(model)
    weights.text_pipeline.clip_tower = None
    with pytest.raises(ConfigError, match="holds no CLIP text tower"):
        plan_text_sources(weights.text_pipeline, root / "v3c1" / "TextData", ["a dog"], ["1"], clip_text="online")


def test_truncation_warning_and_empty_topic_text(tmp_path: Path, small_demo_root: Path) -> None:
    root = _demo_copy(small_demo_root, tmp_path / "root")
    model = _import_model(tmp_path, SMALL, heads=2)
    topic_file = root / "v3c1" / "TextData" / "tv19.avs.txt"
    lines = topic_file.read_text().splitlines()
    long_topic = lines[0].split(" ", 1)[0] + " " + " ".join(["people walking near a river"] * 20)
    topic_file.write_text("\n".join([long_topic, *lines[1:]]) + "\n")
    done = _rank(model, root, tmp_path / "ref")
    assert done.output.count("avsbench: warning: CLIP text of ") == 1 and "EOT is cut off" in done.output
    assert _sidecar_sources(tmp_path / "ref")[0]["texts_over_context"] == [lines[0].split(" ", 1)[0]]
    _rank(model, root, tmp_path / "openai", "--clip-truncation", "openai")
    first_ref = (tmp_path / "ref" / "clip.tv19.txt").read_text().splitlines()[0]
    first_openai = (tmp_path / "openai" / "clip.tv19.txt").read_text().splitlines()[0]
    assert first_ref != first_openai  # the cut topic reads the EOT instead of the SOT row
    topic_file.write_text("\n".join(["611 &nbsp;", *lines[1:]]) + "\n")
    empty = _rank(model, root, tmp_path / "empty", exit_code=2)
    assert "empty topic text for topic 611" in empty.output and "Traceback" not in empty.output


def test_online_vectors_are_cached_per_model_and_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _import_model(tmp_path, SMALL, heads=2)
    pipeline = load_model(model).text_pipeline
    encoded: list[list[str]] = []
    original = ClipTextEncoder.encode

    def spy(self, texts):
        encoded.append(list(texts))
        return original(self, texts)

    monkeypatch.setattr(ClipTextEncoder, "encode", spy)
    first = pipeline.clip_features(["a dog", "a cat"])
    second = pipeline.clip_features(["a cat", "a bird", "a dog"])
    assert encoded == [["a cat", "a dog"], ["a bird"]]
    np.testing.assert_array_equal(first[1], second[0])
    pipeline.clip_features(["a cat"], "openai")
    assert encoded[-1] == ["a cat"]  # another truncation is another key


def test_explain_computes_the_clip_feature_online(tmp_path: Path, small_demo_root: Path) -> None:
    root = _demo_copy(small_demo_root, tmp_path / "root")
    model = _import_model(tmp_path, SMALL, heads=2)
    args = ["explain", "--model", str(model), "--year", "2019", "--topic", "611", "--rootpath", str(root), "--top", "3"]
    done = _cli([*args, "--clip-text", "online"])
    assert "topic 611" in done.output and FEATURE in done.output
    missing = _cli([*args, "--clip-text", "precomputed"], exit_code=2)
    assert f"precomputed text feature '{FEATURE}' is missing" in missing.output


def test_train_computes_clip_caption_features_online(tmp_path: Path, small_demo_root: Path) -> None:
    tower = random_text_tower_state(ClipTextDims(embed=512, width=64, heads=1, layers=1, context=77, vocab=49408))
    torch.save({"model": {"clip_model." + k: v for k, v in tower.items()}}, tmp_path / "ft.pth.tar")
    args = [
        "train",
        "--train-collection",
        "demotrain",
        "--rootpath",
        str(small_demo_root),
        "--demo-settings",
        "--epochs",
        "1",
        "--video-features",
        "demo_clip512",
        "--text-features",
        "bow,clip:clip_online",
        "--out",
        str(tmp_path / "m"),
    ]
    missing = _cli([*args, "--clip-text", "online"], exit_code=2)
    assert "holds no CLIP text tower" in missing.output and "Traceback" not in missing.output
    _cli([*args, "--clip-text", "online", "--clip-weights", str(tmp_path / "ft.pth.tar")])
    loaded = load_model(tmp_path / "m")
    assert loaded.text_pipeline.online_clip_feature == "clip_online"
    assert loaded.config.training["settings"]["clip_text"] == "online"
    info = json.loads(_cli(["model", "info", str(tmp_path / "m"), "--json"]).output)["clip_text"]
    assert info["online"] and info["weights"].startswith("fine-tuned CLIP file")


def test_online_vectors_are_cached_on_disk_under_rank_cache(
    tmp_path: Path, small_demo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _demo_copy(small_demo_root, tmp_path / "root")
    model = _import_model(tmp_path, SMALL, heads=2)
    _rank(model, root, tmp_path / "first", "--cache", str(tmp_path / "cache"))
    [record] = _sidecar_sources(tmp_path / "first")
    assert record["vector_cache"] and len(list(Path(record["vector_cache"]).rglob("*.npy"))) == 30
    calls: list[int] = []
    original = ClipTextEncoder.encode
    monkeypatch.setattr(
        ClipTextEncoder, "encode", lambda self, texts: calls.append(len(texts)) or original(self, texts)
    )
    _rank(model, root, tmp_path / "second", "--cache", str(tmp_path / "cache"))
    assert calls == []
    assert (tmp_path / "first" / "clip.tv19.txt").read_bytes() == (tmp_path / "second" / "clip.tv19.txt").read_bytes()
