"""Training LAFF on a captioned collection (laff.md §3.8).

Loss: per head, the hardest-negative triplet loss (margin 0.2, text-to-video, summed over the
batch), summed over heads. RMSprop (lr 1e-4), StepLR (x0.99 per epoch), ReduceLROnPlateau (max,
x0.5, patience 2) on the validation metric, gradient clipping at 2, early stopping, seeds.

Everything is prepared once per dataset and kept on the device: the text features of every
caption (:class:`~avsbench.model.text.TextCorpus`) and the video features of every captioned
video (read from the memory-mapped BigFiles in bulk, sorted rows). A training step gathers its
batch with tensor indexing; no per-step Python text processing, no per-head Python loops.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from avsbench.data.atomic import check_manifest
from avsbench.data.collection import Collection
from avsbench.errors import ConfigError, InputFormatError, MissingDataError
from avsbench.model.checkpoint import TRAIN_STATE_FILE, resolve_w2v, save_model
from avsbench.model.clip_text import ClipTextTower
from avsbench.model.clip_text_source import CLIP_TEXT_SOURCES, plan_text_sources
from avsbench.model.clip_text_tokenizer import TRUNCATIONS
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel
from avsbench.model.reference_import import read_clip_text_weights
from avsbench.model.text import GRU_SPECIALS, TextCorpus, TextPipeline, WordVectors, build_gru_vocab, build_vocab
from avsbench.progress import ProgressFactory

VAL_METRICS = ("r1", "r5", "r10", "medr", "mir", "rsum")


@dataclass
class TrainSettings:
    """Hyper-parameters (defaults: the reference's LAFF settings)."""

    epochs: int = 80
    batch_size: int = 256
    lr: float = 1e-4
    margin: float = 0.2
    grad_clip: float = 2.0
    lr_decay: float = 0.99
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    early_stop_patience: int = 10
    val_metric: str = "mir"
    seed: int = 2
    common_dim: int = 4096
    heads: int = 8
    dropout: float = 0.2
    batch_norm: bool = False
    fusion: str = "attention"
    tile_features: list[str] = field(default_factory=list)
    vocab_threshold: int = 5
    gru_hidden: int = 1024
    word_dim: int = 500
    w2v: str = "word2vec/flickr/vec500flickr30m"
    max_frames: int = 50
    frame_mask: bool = True
    amp: bool = False  # bfloat16 autocast on CUDA
    tf32: bool = True  # TF32 matmuls on CUDA
    cpu_threads: int | None = None  # torch threads while training on CPU (None: leave torch's setting)
    clip_text: str = "auto"  # where the CLIP caption feature comes from: auto, online or precomputed
    clip_truncation: str = "reference"  # captions over 77 CLIP tokens: reference or openai
    clip_weights: str | None = None  # CLIP text tower for online features (LAFF checkpoint or fine-tuned CLIP file)

    @classmethod
    def from_json(cls, path: str | Path, base: TrainSettings | None = None) -> TrainSettings:
        """Settings from a JSON object over ``base`` (default: the reference's); unknown keys are an error."""
        path = Path(path)
        if not path.is_file():
            raise MissingDataError("training config not found", path=path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise InputFormatError(f"not valid JSON ({exc})", path=path) from None
        if not isinstance(data, dict):
            raise InputFormatError("not a JSON object", path=path)
        return (base or cls()).updated(data, path)

    def updated(self, values: dict[str, Any], path: str | Path | None = None) -> TrainSettings:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training setting(s) {unknown}", path=path, expected=", ".join(sorted(known)))
        merged = dataclasses.replace(self, **values)
        if merged.val_metric not in VAL_METRICS:
            raise ConfigError(f"unknown validation metric {merged.val_metric!r}", expected=", ".join(VAL_METRICS))
        if merged.epochs < 1 or merged.batch_size < 2:
            raise ConfigError("epochs must be >= 1 and batch_size >= 2")
        if merged.clip_text not in CLIP_TEXT_SOURCES or merged.clip_truncation not in TRUNCATIONS:
            raise ConfigError(
                f"bad clip_text {merged.clip_text!r} or clip_truncation {merged.clip_truncation!r}",
                expected=f"clip_text in {CLIP_TEXT_SOURCES}, clip_truncation in {TRUNCATIONS}",
            )
        return merged


# Demo settings: a small common space and few epochs, so that training on the demo collection
# takes well under 3 minutes on 2 CPU cores (the synthetic task saturates within a few epochs).
DEMO_SETTINGS = TrainSettings(
    epochs=5,
    batch_size=128,
    lr=1e-3,
    common_dim=256,
    heads=4,
    vocab_threshold=2,
    gru_hidden=256,
    w2v="word2vec/demo500",
    early_stop_patience=3,
    # the demo model is small: on a shared 2-core box one thread trained in 34 s, two in 177 s (OpenMP contention)
    cpu_threads=1,
)


def parse_text_features(spec: str) -> list[tuple[str, str]]:
    """``bow,w2v,gru,clip:<feat>`` -> [(kind, name)], kinds bow/w2v/gru/precomputed (``clip:``/``precomputed:``)."""
    out: list[tuple[str, str]] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        if part in ("bow", "w2v", "gru"):
            out.append((part, part))
        elif ":" in part and part.split(":", 1)[0] in ("clip", "precomputed") and part.split(":", 1)[1]:
            out.append(("precomputed", part.split(":", 1)[1]))
        else:
            raise ConfigError(
                f"unknown text feature {part!r}", expected="bow, w2v, gru, clip:<feature> or precomputed:<feature>"
            )
    if not out:
        raise ConfigError("no text feature given", expected="e.g. bow,w2v,clip:<feature>")
    order = {"gru": 0, "bow": 1, "w2v": 2, "precomputed": 3}
    return sorted(out, key=lambda kn: order[kn[0]])


def parse_video_features(spec: str | Sequence[str]) -> list[tuple[str, str]]:
    """``a,b,frame:c`` -> [(kind, name)] with kinds ``video`` and ``frame`` (LAFF-ml)."""
    parts = [p.strip() for p in (spec.split(",") if isinstance(spec, str) else spec) if p.strip()]
    if not parts:
        raise ConfigError("no video feature given", expected="e.g. feat_a,feat_b,frame:feat_c")
    return [("frame", p.split(":", 1)[1]) if p.startswith("frame:") else ("video", p) for p in parts]


@dataclass
class SplitData:
    """One collection prepared for training or validation, on the device."""

    corpus: TextCorpus
    caption_video: Tensor  # (n_captions,) row of each caption's video
    video_inputs: dict[str, Tensor]  # per feature (n_videos, dim) or (n_videos, F, dim) + ".mask"
    n_videos: int

    def video_batch(self, rows: Tensor) -> dict[str, Tensor]:
        return {k: v[rows] for k, v in self.video_inputs.items()}


def _video_inputs(
    collection: Collection, videos: list[str], specs: list[FeatureSpec], max_frames: int
) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for spec in specs:
        if spec.kind == "frame":
            frames, mask = collection.frame_feature(spec.name, max_frame=max_frames).read(videos)
            out[spec.name] = torch.from_numpy(frames)
            out[spec.name + ".mask"] = torch.from_numpy(mask)
        else:
            out[spec.name] = torch.from_numpy(collection.feature(spec.name).read(videos))
    return out


def prepare_split(
    collection: Collection,
    pipeline: TextPipeline,
    device: torch.device,
    max_frames: int,
    clip_text: str = "auto",
    clip_truncation: str = "reference",
) -> SplitData:
    """Featurize every caption once and load the features of every captioned video (bulk reads).

    ``clip_text`` / ``clip_truncation``: where the CLIP caption feature comes from (see
    :mod:`avsbench.model.clip_text_source`).
    """
    captions = collection.captions()
    if len(captions) == 0:
        raise InputFormatError("no captions", path=collection.caption_path)
    videos = captions.videos
    row_of = {v: i for i, v in enumerate(videos)}
    texts, ids = list(captions.texts), list(captions.ids)
    sources = plan_text_sources(
        pipeline, collection.text_dir, texts, ids, clip_text=clip_text, truncation=clip_truncation, what="caption"
    )
    corpus = pipeline.corpus(texts, ids, sources.precomputed, online=sources.online).to(device)
    caption_video = torch.tensor([row_of[v] for v in captions.video_ids], dtype=torch.long, device=device)
    inputs = {
        k: v.to(device)
        for k, v in _video_inputs(collection, videos, pipeline.config.video_features, max_frames).items()
    }
    return SplitData(corpus, caption_video, inputs, len(videos))


def triplet_loss(text_emb: Tensor, video_emb: Tensor, video_rows: Tensor, margin: float) -> Tensor:
    """Per head, hardest-negative triplet loss text-to-video summed over the batch; summed over heads.

    Pairs of a caption with another copy of its own video in the batch are not negatives.
    """
    scores = torch.einsum("bhd,chd->hbc", text_emb.float(), video_emb.float())
    positive = scores.diagonal(dim1=1, dim2=2)
    cost = (margin + scores - positive[..., None]).clamp(min=0)
    same_video = video_rows[:, None] == video_rows[None, :]
    cost = cost.masked_fill(same_video[None], 0.0)
    return cost.max(dim=2).values.sum()


def train_step(
    model: LaffModel,
    optimizer: torch.optim.Optimizer,
    data: SplitData,
    rows: Tensor,
    settings: TrainSettings,
    amp: bool = False,
) -> Tensor:
    """One optimisation step on the captions ``rows`` of ``data`` (all on the model's device); returns the loss."""
    video_rows = data.caption_video[rows]
    with torch.autocast(rows.device.type, dtype=torch.bfloat16, enabled=amp):
        text_emb = model.encode_texts(data.corpus.batch(rows))
        video_emb = model.encode_videos(data.video_batch(video_rows))
    loss = triplet_loss(text_emb, video_emb, video_rows, settings.margin)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
    optimizer.step()
    return loss.detach()


@torch.no_grad()
def encode_split(model: LaffModel, data: SplitData, batch_size: int = 1024) -> tuple[Tensor, Tensor, Tensor]:
    """(text embeddings, video embeddings, video attention (n_videos, heads, k)) of a split, in eval mode."""
    model.eval()
    videos, attention = [], []
    for start in range(0, data.n_videos, batch_size):
        rows = torch.arange(start, min(start + batch_size, data.n_videos), device=data.caption_video.device)
        emb, att = model.encode_videos(data.video_batch(rows), return_attention=True)
        videos.append(emb)
        attention.append(att)
    texts: list[Tensor] = []
    for start in range(0, data.corpus.size, batch_size):
        rows = torch.arange(start, min(start + batch_size, data.corpus.size), device=data.caption_video.device)
        texts.append(model.encode_texts(data.corpus.batch(rows)))
    return torch.cat(texts), torch.cat(videos), torch.cat(attention)


def rank_metrics(ranks: Tensor) -> dict[str, float]:
    """R@1/5/10 (%), median rank, mean inverted rank and rsum from 1-based ranks."""
    rank = ranks.double()
    r1, r5, r10 = (float((rank <= k).double().mean() * 100) for k in (1, 5, 10))
    return {
        "r1": r1,
        "r5": r5,
        "r10": r10,
        "medr": float(rank.median()),
        "mir": float((1.0 / rank).mean()),
        "rsum": r1 + r5 + r10,
    }


@torch.no_grad()
def retrieval_metrics(model: LaffModel, data: SplitData) -> dict[str, float]:
    """Text-to-video metrics over the split's videos; the rank of a caption's video counts the videos scoring higher."""
    texts, videos, _ = encode_split(model, data)
    ranks = []
    for start in range(0, texts.shape[0], 2048):
        sims = model.similarity(texts[start : start + 2048], videos)
        true = sims.gather(1, data.caption_video[start : start + 2048, None])
        ranks.append(1 + (sims > true).sum(dim=1))
    return rank_metrics(torch.cat(ranks))


def _seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _feature_spec(name: str, dim: int, kind: str, tile: bool, settings: TrainSettings) -> FeatureSpec:
    """A feature's spec: the tile path (BatchNorm, no dropout) or a linear map with the settings' options."""
    transform = "tile" if tile else "linear"
    return FeatureSpec(
        name, dim, kind, transform, batch_norm=tile or settings.batch_norm, dropout=0.0 if tile else settings.dropout
    )


def build_model_config(
    train: Collection,
    video_features: list[tuple[str, str]],
    text_features: list[tuple[str, str]],
    settings: TrainSettings,
    bow_size: int,
    w2v_dim: int,
    clip_dim: int | None = None,
) -> ModelConfig:
    """The model config for features read from ``train`` (dims from the BigFiles; ``clip_dim``, the
    output of a CLIP text tower, for a precomputed text feature that has no BigFile)."""
    head_dim = settings.common_dim // max(settings.heads, 1)
    video_specs = []
    for kind, name in video_features:
        dim = train.frame_feature(name).dim if kind == "frame" else train.feature(name).dim
        tile = name in settings.tile_features
        if tile and dim != head_dim:
            raise ConfigError(
                f"feature {name!r} ({dim}-d) cannot take the tile path", expected=f"{head_dim}-d (common_dim / heads)"
            )
        video_specs.append(_feature_spec(name, dim, kind, tile, settings))
    text_specs = []
    for kind, name in text_features:
        if kind == "bow":
            dim = bow_size
        elif kind == "w2v":
            dim = w2v_dim
        elif kind == "gru":
            dim = settings.gru_hidden
        elif clip_dim is not None and not (train.text_dir / name).is_dir():
            dim = clip_dim
        else:
            dim = train.text_feature(name).dim
        tile = name in settings.tile_features and kind == "precomputed"
        text_specs.append(_feature_spec(name, dim, kind, tile, settings))
    config = ModelConfig(
        video_features=video_specs,
        text_features=text_specs,
        common_dim=settings.common_dim,
        heads=settings.heads,
        fusion=settings.fusion,
        word_dim=settings.word_dim,
        frame_mask=settings.frame_mask,
        max_frames=settings.max_frames,
        w2v=settings.w2v if any(k == "w2v" for k, _ in text_features) else None,
    )
    config.validate()
    return config


@dataclass
class TrainResult:
    """What a training run produced."""

    model: LaffModel
    pipeline: TextPipeline
    best_metrics: dict[str, float]
    best_epoch: int
    history: list[dict[str, Any]]
    seconds: float
    captions_per_second: float
    out_dir: Path | None


def _step_counter(progress: ProgressFactory | None, label: str, total: int) -> Callable[[], None]:
    """A function that advances ``progress``'s bar for ``label`` by one step (does nothing without ``progress``)."""
    if not progress:
        return lambda: None
    advance = progress(label, total)
    return lambda: advance(1)


def train_model(
    train_collection: str,
    video_features: str | Sequence[str],
    text_features: str,
    *,
    val_collection: str | None = None,
    settings: TrainSettings | None = None,
    rootpath: str | Path | None = None,
    out_dir: str | Path | None = None,
    device: str = "cpu",
    resume: bool = False,
    progress: ProgressFactory | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainResult:
    """Train a LAFF model; with ``out_dir`` the best model is saved there (our format) with a resumable state.

    ``progress`` (see :mod:`avsbench.progress`) gets a bar for the epochs and one per epoch; ``log``
    receives one line of metrics per epoch.
    """
    settings = settings or TrainSettings()
    threads = torch.get_num_threads()
    if settings.cpu_threads and device == "cpu":
        torch.set_num_threads(settings.cpu_threads)
    try:
        return _train_model(
            train_collection,
            video_features,
            text_features,
            val_collection,
            settings,
            rootpath,
            out_dir,
            device,
            resume,
            progress,
            log,
        )
    finally:
        torch.set_num_threads(threads)


@dataclass
class _TextInputs:
    """What the text side needs from the training captions: vocabularies and word vectors."""

    bow_vocab: list[str] | None
    gru_vocab: list[str] | None
    word_vectors: WordVectors | None


@dataclass
class _TrainingRun:
    """The mutable state of one training run: model, optimisation, best model so far and progress."""

    model: LaffModel
    pipeline: TextPipeline
    optimizer: torch.optim.Optimizer
    step_lr: torch.optim.lr_scheduler.StepLR
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau
    generator: torch.Generator
    best_state: dict[str, Tensor]
    out_path: Path | None
    state: dict[str, Any] = field(
        default_factory=lambda: {"epoch": 0, "best_value": -math.inf, "best_epoch": 0, "stale": 0, "history": []}
    )

    def best_metrics(self) -> dict[str, float]:
        best_record: dict[str, Any] = next(
            (r for r in self.state["history"] if r["epoch"] == self.state["best_epoch"]), {}
        )
        return {k: best_record[k] for k in VAL_METRICS if k in best_record}

    def metrics(self) -> dict[str, Any]:
        """The ``metrics`` entry of the model config: best epoch, its validation metrics, the history."""
        return {"best_epoch": self.state["best_epoch"], "val": self.best_metrics(), "history": self.state["history"]}


def _check_device(device: str) -> torch.device:
    torch_device = torch.device(device)
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda requested but CUDA is not available")
    return torch_device


def _text_inputs(
    train: Collection, kinds: set[str], settings: TrainSettings, rootpath: str | Path | None
) -> _TextInputs:
    """Vocabularies built from the training captions and the word vectors, for the text kinds in use."""
    captions = train.captions()
    bow_vocab = build_vocab(captions.texts, settings.vocab_threshold, drop_stopwords=True) if "bow" in kinds else None
    gru_vocab = build_gru_vocab(captions.texts, settings.vocab_threshold) if "gru" in kinds else None
    if bow_vocab is not None and not bow_vocab:
        raise ConfigError(
            f"no word reaches the vocabulary threshold {settings.vocab_threshold}", path=train.caption_path
        )
    word_vectors = None
    if "w2v" in kinds or "gru" in kinds:
        w2v_path = resolve_w2v(ModelConfig([], [], w2v=settings.w2v), rootpath=rootpath)
        if w2v_path is None or not w2v_path.is_dir():
            if "w2v" in kinds:
                raise MissingDataError(
                    "word-vector BigFile not found",
                    path=w2v_path,
                    expected="the 'w2v' training setting (relative to the data root)",
                )
        else:
            word_vectors = WordVectors(w2v_path)
    return _TextInputs(bow_vocab, gru_vocab, word_vectors)


def _new_model(config: ModelConfig, text: _TextInputs, generator: torch.Generator, device: torch.device) -> LaffModel:
    model = LaffModel(config, gru_vocab_size=len(text.gru_vocab) if text.gru_vocab else None)
    if model.gru is not None:
        _init_word_embeddings(model, text.gru_vocab or [], text.word_vectors, generator)
    return model.to(device)


def _new_run(
    model: LaffModel, pipeline: TextPipeline, settings: TrainSettings, generator: torch.Generator, out_path: Path | None
) -> _TrainingRun:
    """RMSprop with StepLR and ReduceLROnPlateau on the validation metric; the initial model as the best so far."""
    optimizer = torch.optim.RMSprop(model.parameters(), lr=settings.lr)
    step_lr = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=settings.lr_decay)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="max", factor=settings.plateau_factor, patience=settings.plateau_patience
    )
    return _TrainingRun(
        model, pipeline, optimizer, step_lr, plateau, generator, copy.deepcopy(model.state_dict()), out_path
    )


def _restore(run: _TrainingRun, device: torch.device) -> None:
    """Continue from the training state saved in the output folder."""
    if run.out_path is None or not (run.out_path / TRAIN_STATE_FILE).is_file():
        raise MissingDataError(
            "nothing to resume", path=None if run.out_path is None else run.out_path / TRAIN_STATE_FILE
        )
    check_manifest(run.out_path)  # the training state belongs to the weights and config beside it
    saved = torch.load(run.out_path / TRAIN_STATE_FILE, map_location=device, weights_only=True)
    run.model.load_state_dict(saved["model"])
    run.best_state = saved["best_model"]
    run.optimizer.load_state_dict(saved["optimizer"])
    run.step_lr.load_state_dict(saved["step_lr"])
    run.plateau.load_state_dict(saved["plateau"])
    run.generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    run.state = json.loads(saved["progress"])


def _prepare_run(
    train_collection: str,
    video_features: str | Sequence[str],
    text_features: str,
    val_collection: str | None,
    settings: TrainSettings,
    rootpath: str | Path | None,
    out_dir: str | Path | None,
    device: torch.device,
) -> tuple[_TrainingRun, SplitData, SplitData | None]:
    """Vocabularies, model config and model, the prepared splits and a fresh optimisation state."""
    generator = _seed_everything(settings.seed)
    train = Collection(rootpath, train_collection)
    val = Collection(rootpath, val_collection) if val_collection else None
    texts = parse_text_features(text_features)
    kinds = {k for k, _ in texts}
    text = _text_inputs(train, kinds, settings, rootpath)
    w2v_dim = text.word_vectors.dim if text.word_vectors else settings.word_dim
    if settings.clip_text == "online" and not settings.clip_weights and "precomputed" in kinds:
        raise ConfigError("--clip-text online: training holds no CLIP text tower", expected="--clip-weights FILE")
    clip = read_clip_text_weights(settings.clip_weights) if settings.clip_weights else None
    tower = ClipTextTower.from_state_dict(clip.state, path=settings.clip_weights) if clip else None
    config = build_model_config(
        train,
        parse_video_features(video_features),
        texts,
        settings,
        len(text.bow_vocab or []),
        w2v_dim,
        clip_dim=tower.dims.embed if tower else None,
    )
    if clip is not None:
        config.source["clip_text"] = clip.origin
    if "gru" in kinds and text.word_vectors is not None:
        config.word_dim = text.word_vectors.dim
    config.training = {
        "train_collection": train_collection,
        "val_collection": val_collection,
        "settings": dataclasses.asdict(settings),
        "device": str(device),
    }
    pipeline = TextPipeline(
        config, bow_vocab=text.bow_vocab, gru_vocab=text.gru_vocab, word_vectors=text.word_vectors, clip_tower=tower
    )
    model = _new_model(config, text, generator, device)
    clip_options = (settings.clip_text, settings.clip_truncation)
    train_data = prepare_split(train, pipeline, device, settings.max_frames, *clip_options)
    val_data = prepare_split(val, pipeline, device, settings.max_frames, *clip_options) if val is not None else None
    run = _new_run(model, pipeline, settings, generator, Path(out_dir) if out_dir is not None else None)
    return run, train_data, val_data


def _train_model(
    train_collection: str,
    video_features: str | Sequence[str],
    text_features: str,
    val_collection: str | None,
    settings: TrainSettings,
    rootpath: str | Path | None,
    out_dir: str | Path | None,
    device: str,
    resume: bool,
    progress: ProgressFactory | None,
    log: Callable[[str], None] | None,
) -> TrainResult:
    started = time.perf_counter()
    torch_device = _check_device(device)
    run, train_data, val_data = _prepare_run(
        train_collection, video_features, text_features, val_collection, settings, rootpath, out_dir, torch_device
    )
    if resume:
        _restore(run, torch_device)
    trained_captions, train_seconds, saved_complete = _fit(
        run, train_data, val_data, settings, torch_device, progress, log
    )
    if run.out_path is not None and not saved_complete:
        _save(run, complete=True)
    run.model.load_state_dict(run.best_state)
    run.model.eval()
    run.model.config.metrics = run.metrics()
    return TrainResult(
        run.model,
        run.pipeline,
        run.best_metrics(),
        run.state["best_epoch"],
        run.state["history"],
        time.perf_counter() - started,
        trained_captions / train_seconds if train_seconds else 0.0,
        run.out_path,
    )


def _fit(
    run: _TrainingRun,
    train_data: SplitData,
    val_data: SplitData | None,
    settings: TrainSettings,
    device: torch.device,
    progress: ProgressFactory | None,
    log: Callable[[str], None] | None,
) -> tuple[int, float, bool]:
    """The epochs (from the saved state on), with validation, best-model tracking, saving and early stopping.

    Returns the number of captions trained on, the seconds spent in training steps and whether
    the model folder was saved as complete (after the last epoch or an early stop).
    """
    use_amp = settings.amp and device.type == "cuda"
    if device.type == "cuda" and settings.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    trained_captions, train_seconds, saved_complete = 0, 0.0, False
    epochs = _step_counter(progress, "epochs", settings.epochs - run.state["epoch"])
    for epoch in range(run.state["epoch"] + 1, settings.epochs + 1):
        record, captions, seconds = _train_epoch(run, train_data, epoch, settings, device, use_amp, progress)
        trained_captions += captions
        train_seconds += seconds
        _end_epoch(run, record, _validation_value(run.model, val_data, record, settings))
        if log is not None:
            log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()))
        finished = epoch == settings.epochs or run.state["stale"] >= settings.early_stop_patience
        if run.out_path is not None:
            _save(run, complete=finished)
            saved_complete = finished
        epochs()
        if finished:
            break
    return trained_captions, train_seconds, saved_complete


def _train_epoch(
    run: _TrainingRun,
    data: SplitData,
    epoch: int,
    settings: TrainSettings,
    device: torch.device,
    use_amp: bool,
    progress: ProgressFactory | None,
) -> tuple[dict[str, Any], int, float]:
    """One pass over the shuffled captions; returns the epoch's record, captions trained on and seconds."""
    run.model.train()
    n = data.corpus.size
    order = torch.randperm(n, generator=run.generator).to(device)
    epoch_loss, epoch_start = torch.zeros((), device=device), time.perf_counter()
    steps = [order[i : i + settings.batch_size] for i in range(0, n, settings.batch_size)]
    steps = [s for s in steps if s.numel() >= 2]
    batches = _step_counter(progress, f"epoch {epoch}", len(steps))
    for rows in steps:
        epoch_loss += train_step(run.model, run.optimizer, data, rows, settings, use_amp)
        batches()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - epoch_start
    record: dict[str, Any] = {
        "epoch": epoch,
        "loss": float(epoch_loss) / max(len(steps), 1),
        "lr": run.optimizer.param_groups[0]["lr"],
    }
    return record, sum(int(s.numel()) for s in steps), seconds


def _validation_value(
    model: LaffModel, val_data: SplitData | None, record: dict[str, Any], settings: TrainSettings
) -> float:
    """Adds the validation metrics to ``record``; returns the value to maximise (minus the loss without validation)."""
    if val_data is None:
        return -record["loss"]
    record.update(retrieval_metrics(model, val_data))
    return record[settings.val_metric] if settings.val_metric != "medr" else -record["medr"]


def _end_epoch(run: _TrainingRun, record: dict[str, Any], value: float) -> None:
    """Step the schedulers, append the record and keep the best model so far."""
    run.step_lr.step()
    run.plateau.step(value)
    run.state["history"].append(record)
    run.state["epoch"] = record["epoch"]
    if value > run.state["best_value"]:
        run.state.update(best_value=value, best_epoch=record["epoch"], stale=0)
        run.best_state = copy.deepcopy(run.model.state_dict())
    else:
        run.state["stale"] += 1


def _init_word_embeddings(
    model: LaffModel, gru_vocab: list[str], word_vectors: WordVectors | None, generator: torch.Generator
) -> None:
    """GRU word embeddings: the word vector where the table has the word, else U(-1, 1) (as the reference)."""
    assert model.gru is not None
    weight = model.gru.embedding.weight
    with torch.no_grad():
        weight.uniform_(-1.0, 1.0, generator=generator)
        if word_vectors is None or word_vectors.dim != weight.shape[1]:
            return
        row_of = word_vectors.bigfile.row_of
        found = [(i, w) for i, w in enumerate(gru_vocab) if w in row_of and w not in GRU_SPECIALS]
        if found:
            vectors = word_vectors.bigfile.read([w for _, w in found])
            weight[torch.tensor([i for i, _ in found])] = torch.from_numpy(vectors)


def _save(run: _TrainingRun, *, complete: bool) -> None:
    """Save the best model so far and the resumable training state (tensors and JSON only) as one unit.

    ``complete=False`` while epochs remain: the folder says so until the run finishes.
    """
    assert run.out_path is not None
    current = copy.deepcopy(run.model.state_dict())
    payload = {
        "model": current,
        "best_model": run.best_state,
        "optimizer": run.optimizer.state_dict(),
        "step_lr": run.step_lr.state_dict(),
        "plateau": run.plateau.state_dict(),
        "generator": run.generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "progress": json.dumps(run.state),
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    run.model.load_state_dict(run.best_state)
    run.model.config.metrics = run.metrics()
    save_model(
        run.out_path,
        run.model,
        bow_vocab=run.pipeline.bow_vocab,
        gru_vocab=run.pipeline.gru_vocab,
        complete=complete,
        extra_files={TRAIN_STATE_FILE: buffer.getvalue()},
        clip_text=run.pipeline.clip_tower.state_dict() if run.pipeline.clip_tower is not None else None,
    )
    run.model.load_state_dict(current)
