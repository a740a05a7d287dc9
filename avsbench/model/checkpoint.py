"""Our model format: a folder with ``config.json`` (versioned JSON), ``weights.safetensors``
and the vocabularies as plain text (``bow_vocab.txt``, ``gru_vocab.txt``). No pickles.

Every file is written atomically; ``config.json`` is written last, so a folder whose config
is present always has the weights it describes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from avsbench.data.atomic import atomic_write_bytes, atomic_write_text
from avsbench.data.bigfile import BigFile
from avsbench.data.root import resolve_root
from avsbench.errors import InputFormatError, MissingDataError
from avsbench.model.clip_text import CLIP_TEXT_PREFIX, ClipTextTower
from avsbench.model.config import ModelConfig
from avsbench.model.laff import LaffModel
from avsbench.model.text import TextPipeline, WordVectors, read_vocab_file, write_vocab_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
BOW_VOCAB_FILE = "bow_vocab.txt"
GRU_VOCAB_FILE = "gru_vocab.txt"


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode), its text pipeline and its config."""

    model: LaffModel
    text_pipeline: TextPipeline
    config: ModelConfig


def save_model(
    model_dir: str | Path, model: LaffModel, *, bow_vocab: list[str] | None = None, gru_vocab: list[str] | None = None,
    clip_text: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` (and its vocabularies) to ``model_dir`` in our format; returns the folder.

    ``clip_text``: a CLIP text tower (OpenAI text keys), stored in the same weights file under
    the ``clip_text.`` prefix so that the model can compute CLIP text features online.
    """
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(
        model.config,
        bow_vocab_file=BOW_VOCAB_FILE if bow_vocab is not None else None,
        gru_vocab_file=GRU_VOCAB_FILE if gru_vocab is not None else None,
    )
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tensors.update({CLIP_TEXT_PREFIX + k: v.detach().to("cpu").contiguous() for k, v in (clip_text or {}).items()})
    atomic_write_bytes(model_dir / WEIGHTS_FILE, save(tensors, metadata={"format": "pt", "config_version": "1"}))
    if bow_vocab is not None:
        write_vocab_file(model_dir / BOW_VOCAB_FILE, bow_vocab)
    if gru_vocab is not None:
        write_vocab_file(model_dir / GRU_VOCAB_FILE, gru_vocab)
    atomic_write_text(model_dir / CONFIG_FILE, config.to_json())
    return model_dir


def resolve_w2v(config: ModelConfig, w2v: str | Path | None = None, rootpath: str | Path | None = None) -> Path | None:
    """The word-vector BigFile folder: ``w2v`` if given, else the config's path (absolute, or under the data root)."""
    if w2v is not None:
        return Path(w2v).expanduser()
    if not config.w2v:
        return None
    path = Path(config.w2v).expanduser()
    return path if path.is_absolute() else resolve_root(rootpath) / path


def load_model(
    model_dir: str | Path,
    device: str | torch.device = "cpu",
    *,
    w2v: str | Path | None = None,
    rootpath: str | Path | None = None,
) -> LoadedModel:
    """Load a model folder written by :func:`save_model` onto ``device``, in eval mode.

    The word vectors (for a ``w2v`` text encoder) are opened when found; without them the text
    pipeline raises :class:`MissingDataError` when asked to featurize text.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise MissingDataError("model folder not found", path=model_dir)
    config = ModelConfig.read(model_dir / CONFIG_FILE)
    bow_vocab = read_vocab_file(model_dir / config.bow_vocab_file) if config.bow_vocab_file else None
    gru_vocab = read_vocab_file(model_dir / config.gru_vocab_file) if config.gru_vocab_file else None
    weights_path = model_dir / WEIGHTS_FILE
    if not weights_path.is_file():
        raise MissingDataError("model weights not found", path=weights_path)
    try:
        state = load_file(weights_path, device="cpu")
    except (SafetensorError, OSError) as exc:
        raise InputFormatError(f"cannot read weights: {exc}", path=weights_path) from None
    clip_tower = _clip_tower(state, weights_path)
    model = LaffModel(config, gru_vocab_size=len(gru_vocab) if gru_vocab else None)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise InputFormatError(f"weights do not match config.json: {' '.join(first[:3])}", path=weights_path) from None
    model.to(device).eval()
    word_vectors = None
    w2v_path = resolve_w2v(config, w2v, rootpath)
    if config.text_feature_of_kind("w2v") is not None and w2v_path is not None and w2v_path.is_dir():
        word_vectors = WordVectors(w2v_path)
    pipeline = TextPipeline(
        config, bow_vocab=bow_vocab, gru_vocab=gru_vocab, word_vectors=word_vectors, clip_tower=clip_tower
    )
    return LoadedModel(model, pipeline, config)


def _clip_tower(state: dict[str, torch.Tensor], weights_path: Path) -> ClipTextTower | None:
    """Pop the ``clip_text.*`` tensors from ``state`` and build the CLIP text tower (None without them)."""
    keys = [k for k in state if k.startswith(CLIP_TEXT_PREFIX)]
    if not keys:
        return None
    tower_state = {k[len(CLIP_TEXT_PREFIX) :]: state.pop(k) for k in keys}
    return ClipTextTower.from_state_dict(tower_state, path=weights_path, prefix=CLIP_TEXT_PREFIX)


def check_collection_features(config: ModelConfig, collection_dir: str | Path) -> None:
    """Raise a clear error unless ``collection_dir`` offers every video feature the model needs, with the right dims."""
    collection_dir = Path(collection_dir)
    missing: list[str] = []
    for spec in config.video_features:
        folder = collection_dir / "FeatureData" / ("frame" if spec.kind == "frame" else "") / spec.name
        if not (folder / "shape.txt").is_file():
            missing.append(str(folder.relative_to(collection_dir)))
            continue
        found = BigFile(folder).dim
        if found != spec.dim:
            raise InputFormatError(f"feature {spec.name!r} is {found}-d", path=folder, expected=f"{spec.dim}-d as the model was trained")
    if missing:
        raise MissingDataError(
            f"the collection lacks {len(missing)} feature(s) the model needs: {', '.join(missing)}",
            path=collection_dir,
            expected="FeatureData/<feature>/ for every video feature of the model",
        )


def model_info(model_dir: str | Path) -> dict:
    """A summary of a model folder: features (name, kind, dim, transform), heads, parameters, training metrics."""
    loaded = load_model(model_dir, "cpu")
    config = loaded.config
    return {
        "path": str(Path(model_dir)),
        "common_dim": config.common_dim,
        "heads": config.heads,
        "head_dim": config.head_dim,
        "fusion": config.fusion,
        "video_features": [{"name": s.name, "kind": s.kind, "dim": s.dim, "transform": s.transform, "batch_norm": s.batch_norm} for s in config.video_features],
        "text_features": [{"name": s.name, "kind": s.kind, "dim": s.dim, "transform": s.transform, "batch_norm": s.batch_norm} for s in config.text_features],
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "bow_vocab_size": len(loaded.text_pipeline.bow_vocab or []),
        "gru_vocab_size": len(loaded.text_pipeline.gru_vocab or []),
        "w2v": config.w2v,
        "training": config.training,
        "metrics": config.metrics,
        "source": {k: v for k, v in config.source.items() if k not in ("opt", "clip_text")},
        "clip_text": clip_text_summary(config, loaded.text_pipeline.clip_tower),
    }


def clip_text_summary(config: ModelConfig, tower: ClipTextTower | None) -> dict | None:
    """Which CLIP text weights a model holds (None when it has no CLIP text feature)."""
    feature = next((s for s in config.text_features if s.kind == "precomputed"), None)
    if feature is None:
        return None
    described = dict(config.source.get("clip_text") or {})
    if tower is None:
        return {"feature": feature.name, "online": False, "weights": "none (precomputed features only)", **described}
    return {"feature": feature.name, "online": True, **described, "dims": tower.dims.to_dict()}
