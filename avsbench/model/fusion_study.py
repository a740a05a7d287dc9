"""The demo's fusion experiment: LAFF against mean fusion and single features, trained alike.

Kept apart from the training loop (:mod:`avsbench.model.train`), which it only calls.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from avsbench.data.collection import Collection
from avsbench.errors import ConfigError
from avsbench.model.train import DEMO_SETTINGS, TrainResult, TrainSettings, encode_split, prepare_split, train_model
from avsbench.progress import ProgressFactory


@dataclass
class FusionComparison:
    """LAFF against its two baselines on one validation set (same settings, same seed)."""

    metric: str
    laff: dict[str, float]
    mean_fusion: dict[str, float]
    singles: dict[str, dict[str, float]]
    average_video_weights: dict[str, float]  # LAFF's mean attention per video feature on the validation videos
    laff_seconds: float

    @property
    def best_single(self) -> str:
        return max(self.singles, key=lambda name: self.singles[name][self.metric])

    @property
    def laff_beats_baselines(self) -> bool:
        value = self.laff[self.metric]
        return value > self.mean_fusion[self.metric] and value > self.singles[self.best_single][self.metric]

    @property
    def features_by_weight(self) -> list[str]:
        return sorted(self.average_video_weights, key=lambda name: -self.average_video_weights[name])


def compare_fusion(
    train_collection: str,
    val_collection: str,
    video_features: str | Sequence[str],
    text_features: str,
    *,
    settings: TrainSettings = DEMO_SETTINGS,
    rootpath: str | Path | None = None,
    device: str = "cpu",
    out_dir: str | Path | None = None,
    progress: ProgressFactory | None = None,
) -> FusionComparison:
    """Train LAFF (attention fusion), the attention-free mean fusion and one model per single video
    feature; return their validation metrics and LAFF's average attention per video feature.
    With ``out_dir`` the LAFF model is saved there."""
    if settings.val_metric == "medr":
        raise ConfigError("compare_fusion needs a metric where higher is better", expected="mir, r1, r5, r10 or rsum")
    train = functools.partial(
        train_model,
        train_collection,
        text_features=text_features,
        val_collection=val_collection,
        rootpath=rootpath,
        device=device,
        progress=progress,
    )
    laff = train(video_features, settings=dataclasses.replace(settings, fusion="attention"), out_dir=out_dir)
    mean = train(video_features, settings=dataclasses.replace(settings, fusion="mean"))
    singles = {}
    for kind_name in video_features.split(",") if isinstance(video_features, str) else video_features:
        single = train([kind_name], settings=dataclasses.replace(settings, fusion="attention"))
        singles[kind_name.split(":", 1)[-1]] = single.best_metrics
    weights = average_video_weights(laff, Collection(rootpath, val_collection), settings.max_frames)
    return FusionComparison(settings.val_metric, laff.best_metrics, mean.best_metrics, singles, weights, laff.seconds)


def average_video_weights(result: TrainResult, collection: Collection, max_frames: int) -> dict[str, float]:
    """A trained model's mean attention per video feature (over all heads) on a captioned collection's videos."""
    _, _, attention = encode_split(
        result.model, prepare_split(collection, result.pipeline, result.model.device, max_frames)
    )
    weights = attention.float().mean(dim=(0, 1)).cpu().tolist()
    return dict(zip((spec.name for spec in result.model.config.video_features), weights))
