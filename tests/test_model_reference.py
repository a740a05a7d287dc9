"""Our LAFF reproduces the public reference implementation on the bundled fixture (atol 1e-5)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from avsbench.model.checkpoint import load_model
from avsbench.model.reference_import import (
    convert_reference_state_dict,
    import_reference_checkpoint,
    model_from_reference,
    read_reference_checkpoint,
)
from avsbench.model.text import STOPWORDS, bow_counts, build_gru_vocab, build_vocab, content_tokens, tokenize

FIXTURE = Path(__file__).parent / "fixtures" / "laff_reference"
ATOL = 1e-5


@pytest.fixture(scope="module")
def inputs() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURE / "inputs.npz"))


@pytest.fixture(scope="module")
def outputs() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURE / "outputs.npz"))


@pytest.fixture(scope="module")
def fixture_json() -> dict:
    return json.loads((FIXTURE / "fixture.json").read_text())


def _video_inputs(inputs: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {str(n): torch.from_numpy(inputs[f"video_feat.{n}"]) for n in inputs["video_feature_names"]}


def _text_inputs(inputs: dict[str, np.ndarray], clip_name: str) -> dict[str, torch.Tensor]:
    return {
        "gru": torch.from_numpy(inputs["gru_token_ids"]),
        "gru.lengths": torch.from_numpy(inputs["gru_lengths"]),
        "bow": torch.from_numpy(inputs["bow"]),
        "w2v": torch.from_numpy(inputs["w2v"]),
        clip_name: torch.from_numpy(inputs["clip_text"]),
    }


def _close(actual: torch.Tensor, expected: np.ndarray) -> None:
    np.testing.assert_allclose(actual.detach().numpy(), expected, atol=ATOL, rtol=0)


def test_architecture_is_inferred_from_the_state_dict(inputs):
    state = read_reference_checkpoint(FIXTURE / "reference_checkpoint.pth.tar").state_dict
    config = convert_reference_state_dict(state).config
    assert [s.name for s in config.video_features] == [str(n) for n in inputs["video_feature_names"]]
    assert [(s.dim, s.transform) for s in config.video_features] == [(512, "tile"), (64, "linear"), (96, "linear")]
    assert [s.kind for s in config.text_features] == ["gru", "bow", "w2v", "precomputed"]
    assert [s.dim for s in config.text_features] == [128, 49, 500, 512]
    assert (config.heads, config.common_dim) == (8, 4096)


def test_reference_outputs_are_reproduced(inputs, outputs):
    converted = convert_reference_state_dict(
        read_reference_checkpoint(FIXTURE / "reference_checkpoint.pth.tar").state_dict
    )
    model = model_from_reference(converted)
    with torch.no_grad():
        video, video_att = model.encode_videos(_video_inputs(inputs), return_attention=True)
        text, text_att = model.encode_texts(_text_inputs(inputs, "clip"), return_attention=True)
        gru_out = model.gru(torch.from_numpy(inputs["gru_token_ids"]), torch.from_numpy(inputs["gru_lengths"]))
        _close(video, outputs["video_embs"])
        _close(video_att.permute(1, 0, 2), outputs["video_attention"])
        _close(text, outputs["text_embs"])
        _close(text_att.permute(1, 0, 2), outputs["text_attention"])
        _close(gru_out, outputs["gru_mean_output"])
        _close(model.similarity(text, video), outputs["similarity"])
        _close(model.similarity_per_head(text, video), outputs["similarity_per_head"])


def test_reference_outputs_without_gru(inputs, outputs):
    state = read_reference_checkpoint(FIXTURE / "reference_checkpoint.pth.tar").state_dict
    state = {k: v for k, v in state.items() if "rnn_encoder" not in k}
    model = model_from_reference(convert_reference_state_dict(state))
    assert [s.reference_name for s in model.config.text_features] == [
        str(x) for x in outputs["text_encoder_order_nogru"]
    ]
    with torch.no_grad():
        video = model.encode_videos(_video_inputs(inputs))
        text, text_att = model.encode_texts(_text_inputs(inputs, "clip"), return_attention=True)
        _close(video, outputs["video_embs"])
        _close(text, outputs["text_embs_nogru"])
        _close(text_att.permute(1, 0, 2), outputs["text_attention_nogru"])
        _close(model.similarity(text, video), outputs["similarity_nogru"])


def test_reference_input_names_are_accepted(inputs, outputs):
    model = model_from_reference(
        convert_reference_state_dict(read_reference_checkpoint(FIXTURE / "reference_checkpoint.pth.tar").state_dict)
    )
    by_reference_name = {
        "rnn_encoder": torch.from_numpy(inputs["gru_token_ids"]),
        "rnn_encoder.lengths": torch.from_numpy(inputs["gru_lengths"]),
        "bow_encoder": torch.from_numpy(inputs["bow"]),
        "w2v_encoder": torch.from_numpy(inputs["w2v"]),
        "CLIP_encoder": torch.from_numpy(inputs["clip_text"]),
    }
    with torch.no_grad():
        _close(model.encode_texts(by_reference_name), outputs["text_embs"])


def test_tokenizer_and_stopwords_match_the_fixture(fixture_json):
    for query in fixture_json["text_featurization"]["query_tokens"]:
        tokens = tokenize(query["query"])
        assert tokens == query["tokens"]
        assert content_tokens(tokens) == query["tokens_without_stopwords"], query["query"]
    assert {"a", "the", "of", "and", "over"} <= STOPWORDS
    assert not {"two", "near", "man", "people"} & STOPWORDS


def test_vocabularies_and_bow_match_the_fixture(inputs):
    captions = [
        line.split(None, 1)[1]
        for line in (FIXTURE / "vocab_captions.txt").read_text().splitlines()
        if len(line.split(None, 1)) == 2
    ]
    assert build_vocab(captions, threshold=2, drop_stopwords=True) == [str(w) for w in inputs["bow_vocab_words"]]
    assert build_gru_vocab(captions, threshold=2) == [str(w) for w in inputs["gru_vocab_words"]]
    counts = bow_counts([str(q) for q in inputs["queries"]], [str(w) for w in inputs["bow_vocab_words"]])
    np.testing.assert_array_equal(counts, inputs["bow"])


def test_imported_model_folder_reproduces_outputs_from_strings(tmp_path, inputs, outputs):
    """import-laff, then load_model: text features computed from the query strings by our pipeline."""
    import_reference_checkpoint(FIXTURE / "reference_checkpoint.pth.tar", tmp_path / "m", w2v=FIXTURE / "w2v_bigfile")
    loaded = load_model(tmp_path / "m", "cpu")
    assert loaded.text_pipeline.precomputed_features == ["clip_finetune_8frame_uniform_1103"]
    from avsbench.data.bigfile import BigFile

    clip = BigFile.write(tmp_path / "clip", [str(i) for i in inputs["query_ids"]], inputs["clip_text"])
    queries = [str(q) for q in inputs["queries"]]
    ids = [str(i) for i in inputs["query_ids"]]
    features = loaded.text_pipeline.featurize(queries, ids, {"clip_finetune_8frame_uniform_1103": clip})
    np.testing.assert_allclose(features["w2v"].numpy(), inputs["w2v"], atol=1e-7, rtol=0)
    np.testing.assert_array_equal(features["bow"].numpy(), inputs["bow"])
    lengths = features["gru.lengths"].numpy()
    np.testing.assert_array_equal(lengths, inputs["gru_lengths"])
    np.testing.assert_array_equal(features["gru"].numpy(), inputs["gru_token_ids"][:, : lengths.max()])
    with torch.no_grad():
        text = loaded.model.encode_texts(features)
        video = loaded.model.encode_videos(_video_inputs(inputs))
        _close(text, outputs["text_embs"])
        _close(loaded.model.similarity(text, video), outputs["similarity"])


@pytest.mark.parametrize("device_type", ["cpu"] + (["cuda"] if torch.cuda.is_available() else []))
def test_bfloat16_autocast_keeps_the_ranking(inputs, outputs, device_type):
    model = model_from_reference(
        convert_reference_state_dict(read_reference_checkpoint(FIXTURE / "reference_checkpoint.pth.tar").state_dict)
    )
    model.to(device_type)
    with torch.no_grad(), torch.autocast(device_type, dtype=torch.bfloat16):
        video = model.encode_videos(_video_inputs(inputs))
        text = model.encode_texts(_text_inputs(inputs, "clip"))
        sims = model.similarity(text, video).float().cpu()
    assert video.dtype == torch.float32
    np.testing.assert_allclose(sims.numpy(), outputs["similarity"], atol=2e-2)
