"""Explanations: LAFF's attention weights per head, for a query and for shots.

For a topic, the text side says how much each text feature counts in each head; for each of
its top shots the video side says how much each video feature counts. Averaged over many
shots (or queries), the weights give the model-level importance of each feature, which the
LAFF paper uses for feature selection.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from avsbench.data.collection import Collection
from avsbench.data.topics import Topic, get_year, topic_number
from avsbench.errors import UnknownIdError
from avsbench.model.checkpoint import LoadedModel, check_collection_features
from avsbench.model.clip_text_source import plan_text_sources
from avsbench.model.laff import LaffModel


@dataclass
class ShotExplanation:
    shot_id: str
    score: float
    weights: np.ndarray  # (heads, k_video)


@dataclass
class TopicExplanation:
    """Attention weights for one topic and its top shots, plus the model-level averages."""

    topic: int
    query: str
    text_features: list[str]
    video_features: list[str]
    text_weights: np.ndarray  # (heads, k_text)
    shots: list[ShotExplanation]
    average_video_weights: np.ndarray  # (k_video,) mean over all shots scanned and heads
    average_text_weights: np.ndarray  # (k_text,) mean over all topics of the year and heads
    n_shots_scanned: int


def _shot_inputs(loaded: LoadedModel, shots: list[str], sources: dict) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for spec in loaded.config.video_features:
        if spec.kind == "frame":
            frames, mask = sources[spec.name].read(shots)
            out[spec.name], out[spec.name + ".mask"] = torch.from_numpy(frames), torch.from_numpy(mask)
        else:
            out[spec.name] = torch.from_numpy(sources[spec.name].read(shots))
    return out


@torch.no_grad()
def average_attention(model: LaffModel, inputs: dict[str, Tensor], side: str) -> np.ndarray:
    """Mean attention weight per feature (over items and heads) for video or text ``inputs``."""
    if side == "video":
        _, weights = model.encode_videos(inputs, return_attention=True)
    else:
        _, weights = model.encode_texts(inputs, return_attention=True)
    return weights.float().mean(dim=(0, 1)).cpu().numpy()


def _topic_text_inputs(
    loaded: LoadedModel, collection: Collection, topics: list[Topic], clip_text: str, clip_truncation: str
) -> dict[str, Tensor]:
    """The text-side inputs of ``topics`` (precomputed features from the collection, or CLIP online)."""
    texts, ids = [t.text for t in topics], [str(t.number) for t in topics]
    sources = plan_text_sources(
        loaded.text_pipeline, collection.text_dir, texts, ids, clip_text=clip_text, truncation=clip_truncation
    )
    return loaded.text_pipeline.featurize(texts, ids, sources.precomputed, online=sources.online)


def _video_sources(loaded: LoadedModel, collection: Collection) -> dict:
    """The collection's reader of each video feature the model uses."""
    return {
        s.name: collection.frame_feature(s.name, max_frame=loaded.config.max_frames)
        if s.kind == "frame"
        else collection.feature(s.name)
        for s in loaded.config.video_features
    }


def _scan_shots(
    loaded: LoadedModel, sources: dict, shots: list[str], query_emb: Tensor, top: int, chunk_size: int
) -> tuple[Tensor, list[str], Tensor]:
    """The ``top`` best scores and shot ids for ``query_emb``, and the video attention summed over all ``shots``."""
    model = loaded.model
    device = model.device
    best_scores = torch.empty(0)
    best_ids: list[str] = []
    weight_sum = torch.zeros(len(loaded.config.video_features), dtype=torch.float64)
    for start in range(0, len(shots), chunk_size):
        chunk = shots[start : start + chunk_size]
        inputs = {k: v.to(device) for k, v in _shot_inputs(loaded, chunk, sources).items()}
        video_emb, video_att = model.encode_videos(inputs, return_attention=True)
        weight_sum += video_att.double().sum(dim=(0, 1)).cpu()
        scores = model.similarity(query_emb, video_emb)[0].cpu()
        merged_scores = torch.cat([best_scores, scores])
        merged_ids = best_ids + chunk
        keep = sorted(range(len(merged_ids)), key=lambda i: (-float(merged_scores[i]), _desc(merged_ids[i])))[:top]
        best_scores = merged_scores[keep]
        best_ids = [merged_ids[i] for i in keep]
    return best_scores, best_ids, weight_sum


@torch.no_grad()
def explain_topic(
    loaded: LoadedModel,
    year: str | int,
    topic: int | str,
    *,
    top: int = 10,
    rootpath: str | Path | None = None,
    chunk_size: int = 8192,
    clip_text: str = "auto",
    clip_truncation: str = "reference",
) -> TopicExplanation:
    """Explain the ranking of ``topic`` of ``year`` on that year's collection under ``rootpath``.

    ``clip_text`` / ``clip_truncation``: how the CLIP text feature is obtained, as for ranking.
    """
    topic = topic_number(topic)  # 611 or 1611
    year_info = get_year(year)
    collection = Collection(rootpath, year_info.collection)
    check_collection_features(loaded.config, collection.path)
    topics: list[Topic] = list(collection.topics(year_info))
    numbers = [t.number for t in topics]
    if topic not in numbers:
        raise UnknownIdError(
            f"topic {topic} is not a topic of {year_info.edition}", expected=f"{min(numbers)}..{max(numbers)}"
        )
    model = loaded.model
    device = model.device
    text_inputs = _topic_text_inputs(loaded, collection, topics, clip_text, clip_truncation)
    text_emb, text_att = model.encode_texts({k: v.to(device) for k, v in text_inputs.items()}, return_attention=True)
    row = numbers.index(topic)
    query_emb = text_emb[row : row + 1]

    sources = _video_sources(loaded, collection)
    shots = collection.searchable_shots
    best_scores, best_ids, weight_sum = _scan_shots(loaded, sources, shots, query_emb, top, chunk_size)
    heads = loaded.config.heads
    top_inputs = {k: v.to(device) for k, v in _shot_inputs(loaded, best_ids, sources).items()}
    _, top_att = (
        model.encode_videos(top_inputs, return_attention=True) if best_ids else (None, torch.empty(0, heads, 0))
    )
    return TopicExplanation(
        topic=topic,
        query=topics[row].text,
        text_features=[s.name for s in loaded.config.text_features],
        video_features=[s.name for s in loaded.config.video_features],
        text_weights=text_att[row].float().cpu().numpy(),
        shots=[
            ShotExplanation(s, float(v), top_att[i].float().cpu().numpy())
            for i, (s, v) in enumerate(zip(best_ids, best_scores))
        ],
        average_video_weights=(weight_sum / max(len(shots) * heads, 1)).numpy(),
        average_text_weights=text_att.float().mean(dim=(0, 1)).cpu().numpy(),
        n_shots_scanned=len(shots),
    )


def _desc(shot_id: str) -> tuple[int, ...]:
    """Sort key giving shot id DESCENDING as a byte string (ties after score)."""
    return tuple(-b for b in shot_id.encode()) + (1,)
