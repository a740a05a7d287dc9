"""Model folders: saving leaves the caller's objects alone, folders are written as a unit and checked on load."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from avsbench.model.checkpoint import load_model, save_model
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel


def small_config() -> ModelConfig:
    return ModelConfig(
        video_features=[FeatureSpec("vid_a", 12, "video"), FeatureSpec("vid_b", 8, "video")],
        text_features=[FeatureSpec("bow", 5, "bow"), FeatureSpec("clip", 16, "precomputed")],
        common_dim=16,
        heads=2,
    )


def small_model(seed: int = 0) -> LaffModel:
    torch.manual_seed(seed)
    return LaffModel(small_config()).eval()


VOCAB = ["apple", "ball", "cat", "dog", "egg"]


def test_save_model_leaves_the_callers_config_unchanged(tmp_path: Path) -> None:
    model = small_model()
    before = copy.deepcopy(model.config)
    save_model(tmp_path / "m", model, bow_vocab=VOCAB)
    assert model.config == before and model.config.bow_vocab_file is None
    loaded = load_model(tmp_path / "m")
    assert loaded.config.bow_vocab_file == "bow_vocab.txt" and loaded.text_pipeline.bow_vocab == VOCAB
