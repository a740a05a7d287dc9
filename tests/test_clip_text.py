"""CLIP text tower and tokenizer against the reference fixture(s) in tests/fixtures/clip_text_*.

Every fixture folder holds a tiny CLIP in LAFF's checkpoint layout (gzipped), the query texts and
the features the LAFF reference computes online. Sizes, key prefix and tolerances are read from
each fixture's ``fixture.json``, so fixtures of other sizes run unchanged.
"""

from __future__ import annotations

import gzip
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from avsbench.errors import InputFormatError
from avsbench.model.clip_text import (
    ClipTextDims,
    ClipTextEncoder,
    ClipTextTower,
    random_text_tower_state,
    text_tower_dims,
)
from avsbench.model.clip_text_tokenizer import ClipTokenizer, ClipTruncationWarning, clean_text, default_tokenizer

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_DIRS = sorted(p for p in FIXTURES.glob("clip_text_*") if (p / "fixture.json").is_file())


@dataclass
class ClipFixture:
    folder: Path
    meta: dict
    texts: list[str]
    outputs: dict[str, np.ndarray]
    checkpoint_bytes: bytes

    @property
    def prefix(self) -> str:
        return self.meta["config"]["key_prefix"]

    @property
    def atol(self) -> float:
        return float(self.meta["tolerances"]["text_features_atol"])

    def tower_state(self) -> dict[str, torch.Tensor]:
        raw = torch.load(io.BytesIO(self.checkpoint_bytes), map_location="cpu", weights_only=True)["model"]
        return {k[len(self.prefix) :]: v for k, v in raw.items() if k.startswith(self.prefix)}

    def write_checkpoint(self, path: Path) -> Path:
        path.write_bytes(self.checkpoint_bytes)
        return path


def _load_fixture(folder: Path) -> ClipFixture:
    meta = json.loads((folder / "fixture.json").read_text(encoding="utf-8"))
    inputs = json.loads((folder / "inputs.json").read_text(encoding="utf-8"))
    with np.load(folder / "outputs.npz") as npz:
        outputs = {k: npz[k] for k in npz.files}
    data = gzip.decompress(next(folder.glob("*.pth.tar.gz")).read_bytes())
    return ClipFixture(folder, meta, [q["text"] for q in inputs["queries"]], outputs, data)


@pytest.fixture(scope="module", params=FIXTURE_DIRS, ids=[p.name for p in FIXTURE_DIRS])
def clip_fixture(request: pytest.FixtureRequest) -> ClipFixture:
    return _load_fixture(request.param)


def test_fixture_present() -> None:
    assert FIXTURE_DIRS, "tests/fixtures/clip_text_reference is missing"


def test_token_ids_identical_for_every_query(clip_fixture: ClipFixture) -> None:
    context = clip_fixture.meta["config"]["context_length"]
    tokenizer = default_tokenizer(context)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClipTruncationWarning)
        reference = tokenizer.tokenize(clip_fixture.texts, "reference")
        openai = tokenizer.tokenize(clip_fixture.texts, "openai")
    np.testing.assert_array_equal(reference, clip_fixture.outputs["tokens"])
    np.testing.assert_array_equal(openai, clip_fixture.outputs["tokens_openai_truncate"])
    for query, row in zip(clip_fixture.meta["per_query"], reference):
        assert int(row.argmax()) == query["pool_index"]


def test_tower_dims_read_from_state_dict(clip_fixture: ClipFixture) -> None:
    config = clip_fixture.meta["config"]
    dims = text_tower_dims(clip_fixture.tower_state())
    assert dims == ClipTextDims(
        embed=config["embed_dim"],
        width=config["transformer_width"],
        heads=config["transformer_heads"],
        layers=config["transformer_layers"],
        context=config["context_length"],
        vocab=config["vocab_size"],
    )


TRUNCATION_OUTPUTS = [("reference", "text_features"), ("openai", "text_features_openai_truncate")]


@pytest.mark.parametrize(("truncation", "key"), TRUNCATION_OUTPUTS)
def test_features_match_reference_python_api(clip_fixture: ClipFixture, truncation: str, key: str) -> None:
    encoder = ClipTextEncoder(ClipTextTower.from_state_dict(clip_fixture.tower_state()), truncation=truncation)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClipTruncationWarning)
        features = encoder.encode(clip_fixture.texts)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features, clip_fixture.outputs[key], rtol=0, atol=clip_fixture.atol)
    one_by_one = np.concatenate([encoder.encode([t]) for t in clip_fixture.texts[:5]])
    np.testing.assert_allclose(one_by_one, clip_fixture.outputs[key][:5], rtol=0, atol=clip_fixture.atol)


def test_reference_truncation_warns_and_reads_the_start_token() -> None:
    tokenizer = default_tokenizer()
    long_text = " ".join(["dog"] * 100)
    with pytest.warns(ClipTruncationWarning, match="EOT is cut off"):
        row = tokenizer.tokenize([long_text], "reference")[0]
    assert row[-1] != tokenizer.eot and int(row.argmax()) == 0
    with pytest.warns(ClipTruncationWarning):
        row = tokenizer.tokenize([long_text], "openai")[0]
    assert row[-1] == tokenizer.eot and int(row.argmax()) == len(row) - 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tokenizer.tokenize(["a dog"], "reference")  # no warning when it fits


def test_cleaning_and_special_tokens() -> None:
    tokenizer = default_tokenizer()
    assert clean_text("  Rock &amp;amp; ROLL\t\n ") == "rock & roll"
    assert tokenizer.encode("<|endoftext|>") == [tokenizer.eot]
    assert tokenizer.encode("") == []
    assert isinstance(tokenizer, ClipTokenizer) and tokenizer.vocab_size == 49408


def _small_dims(width: int = 128, layers: int = 2, embed: int = 16) -> ClipTextDims:
    return ClipTextDims(embed=embed, width=width, heads=width // 64, layers=layers, context=77, vocab=49408)


def test_packed_texts_equal_padding_to_context() -> None:
    tower = ClipTextTower.from_state_dict(random_text_tower_state(_small_dims(), seed=3))
    encoder = ClipTextEncoder(tower, pack_tokens=80)
    texts = ["a dog", "two people riding bicycles on a mountain road at sunset", "x", "a man and a woman dancing"]
    ids = torch.from_numpy(encoder.token_ids(texts))
    with torch.inference_mode():
        full = tower(ids, ids.argmax(dim=1)).numpy()
    np.testing.assert_allclose(encoder.encode(texts), full, rtol=0, atol=2e-6)


def test_missing_tower_keys_are_named() -> None:
    state = random_text_tower_state(_small_dims(), seed=0)
    del state["transformer.resblocks.1.mlp.c_fc.bias"], state["ln_final.weight"]
    with pytest.raises(InputFormatError, match=r"missing clip\.ln_final\.weight"):
        text_tower_dims(state, prefix="clip.")
    state["ln_final.weight"] = torch.ones(128)
    with pytest.raises(InputFormatError, match=r"transformer\.resblocks\.1\.mlp\.c_fc\.bias"):
        text_tower_dims(state)


def test_width_not_a_multiple_of_64_is_refused() -> None:
    state = random_text_tower_state(ClipTextDims(embed=16, width=96, heads=1, layers=1, context=77, vocab=49408))
    with pytest.raises(InputFormatError, match="not a multiple of 64"):
        text_tower_dims(state)


def test_inconsistent_shapes_are_refused() -> None:
    state = random_text_tower_state(_small_dims(), seed=0)
    state["transformer.resblocks.0.attn.in_proj_weight"] = torch.zeros(3 * 128, 64)
    with pytest.raises(InputFormatError, match="in_proj_weight has shape"):
        text_tower_dims(state)


# --- import-laff: the tower travels into the model folder ------------------------------------------


def _import_cli(args: list[str]):
    from click.testing import CliRunner

    from avsbench.cli import main

    return CliRunner().invoke(main, ["model", *args])


def _laff_checkpoint(clip_fixture: ClipFixture, path: Path, clip_model: dict | None = None) -> Path:
    from clip_laff_layout import laff_state_with_clip, save_checkpoint

    raw = torch.load(io.BytesIO(clip_fixture.checkpoint_bytes), map_location="cpu", weights_only=True)["model"]
    clip_model = clip_model if clip_model is not None else {k[len(clip_fixture.prefix) :]: v for k, v in raw.items()}
    embed = clip_fixture.meta["config"]["embed_dim"]
    state = laff_state_with_clip(clip_model, heads=2, video_dims={"feat_a": 24, "feat_b": 40}, seed=1, head_dim=embed)
    save_checkpoint(path, state)
    return path


def test_import_laff_keeps_the_text_tower_and_matches_reference(clip_fixture: ClipFixture, tmp_path: Path) -> None:
    from avsbench.model.checkpoint import load_model

    checkpoint = _laff_checkpoint(clip_fixture, tmp_path / "laff.pth.tar")
    done = _import_cli(["import-laff", str(checkpoint), "--out", str(tmp_path / "m"), "--clip-feature", "clip_b32"])
    assert done.exit_code == 0, done.output
    n_visual = clip_fixture.meta["state_dict"]["n_visual_keys"]
    assert (
        f"{clip_fixture.meta['state_dict']['n_text_keys']} text keys kept, {n_visual} visual keys skipped"
        in done.output
    )
    loaded = load_model(tmp_path / "m")
    pipeline = loaded.text_pipeline
    assert pipeline.online_clip_feature == "clip_b32"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ClipTruncationWarning)
        for truncation, key in TRUNCATION_OUTPUTS:
            features = pipeline.clip_features(clip_fixture.texts, truncation)
            np.testing.assert_allclose(features, clip_fixture.outputs[key], rtol=0, atol=clip_fixture.atol)
        ids = [str(i) for i in range(len(clip_fixture.texts))]
        inputs = pipeline.featurize(clip_fixture.texts, ids, online={"clip_b32": "reference"})
    np.testing.assert_allclose(
        inputs["clip_b32"].numpy(), clip_fixture.outputs["text_features"], rtol=0, atol=clip_fixture.atol
    )
    info = _import_cli(["info", str(tmp_path / "m")])
    assert info.exit_code == 0, info.output
    assert "CLIP text (clip_b32): online from the LAFF checkpoint's own CLIP" in info.output
    assert f"{n_visual} visual keys skipped" in info.output


def test_clip_weights_file_replaces_the_tower(clip_fixture: ClipFixture, tmp_path: Path) -> None:
    from avsbench.model.checkpoint import load_model

    checkpoint = _laff_checkpoint(clip_fixture, tmp_path / "laff.pth.tar")
    tuned = {k: v * 1.01 if k.startswith("transformer.") else v for k, v in clip_fixture.tower_state().items()}
    torch.save(
        {"model": {"clip_model.ClipModel." + k: v for k, v in tuned.items()}, "epoch": 1}, tmp_path / "ft.pth.tar"
    )
    done = _import_cli(
        ["import-laff", str(checkpoint), "--out", str(tmp_path / "m"), "--clip-weights", str(tmp_path / "ft.pth.tar")]
    )
    assert done.exit_code == 0, done.output
    assert "fine-tuned CLIP file" in done.output
    texts = clip_fixture.texts[:6]
    expected = ClipTextEncoder(ClipTextTower.from_state_dict(tuned)).encode(texts)
    online = load_model(tmp_path / "m").text_pipeline.clip_features(texts)
    np.testing.assert_allclose(online, expected, rtol=0, atol=1e-6)
    assert np.abs(online - clip_fixture.outputs["text_features"][:6]).max() > 1e-3
    info = _import_cli(["info", str(tmp_path / "m"), "--json"])
    assert json.loads(info.output)["clip_text"]["weights"].startswith("fine-tuned CLIP file")


def test_partial_clip_model_keys_are_named(clip_fixture: ClipFixture, tmp_path: Path) -> None:
    clip_model = {
        k: v for k, v in clip_fixture.tower_state().items() if "resblocks.1.attn" not in k and k != "text_projection"
    }
    checkpoint = _laff_checkpoint(clip_fixture, tmp_path / "laff.pth.tar", clip_model=clip_model)
    done = _import_cli(["import-laff", str(checkpoint), "--out", str(tmp_path / "m")])
    assert done.exit_code == 2 and "Traceback" not in done.output
    assert "missing txt_net.encoder.CLIP_encoder.ClipModel.text_projection" in done.output
    assert not (tmp_path / "m").exists()


def test_clip_weights_of_another_architecture_are_refused(clip_fixture: ClipFixture, tmp_path: Path) -> None:
    checkpoint = _laff_checkpoint(clip_fixture, tmp_path / "laff.pth.tar")
    dims = text_tower_dims(clip_fixture.tower_state())
    other = random_text_tower_state(
        ClipTextDims(dims.embed, dims.width + 64, dims.heads + 1, dims.layers, dims.context, dims.vocab)
    )
    torch.save({"model": {"clip_model." + k: v for k, v in other.items()}}, tmp_path / "other.pth.tar")
    done = _import_cli(
        [
            "import-laff",
            str(checkpoint),
            "--out",
            str(tmp_path / "m"),
            "--clip-weights",
            str(tmp_path / "other.pth.tar"),
        ]
    )
    assert done.exit_code == 2 and "a CLIP of another architecture" in done.output and "other.pth.tar" in done.output
    done = _import_cli(
        ["import-laff", str(checkpoint), "--out", str(tmp_path / "m"), "--clip-weights", str(checkpoint)]
    )
    assert done.exit_code == 2 and "not a fine-tuned CLIP file" in done.output
    assert not (tmp_path / "m").exists()
