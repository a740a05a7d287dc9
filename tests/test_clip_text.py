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
        embed=config["embed_dim"], width=config["transformer_width"], heads=config["transformer_heads"],
        layers=config["transformer_layers"], context=config["context_length"], vocab=config["vocab_size"],
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


def test_padding_to_longest_equals_padding_to_context() -> None:
    tower = ClipTextTower.from_state_dict(random_text_tower_state(_small_dims(), seed=3))
    encoder = ClipTextEncoder(tower, batch_size=4)
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
