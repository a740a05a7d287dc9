"""Our model format: a folder with ``config.json`` (versioned JSON), ``weights.safetensors``,
the vocabularies as plain text (``bow_vocab.txt``, ``gru_vocab.txt``) and ``manifest.json``.
No pickles.

The folder is written as a unit (:func:`avsbench.data.atomic.folder_unit`: built beside it, then
swapped in), with a manifest of every file's size and SHA-256 written last; loading verifies the
manifest, so new weights are never used with an old config or vocabulary. The config is checked
(types, bounds, plain file names) and the weights' safetensors header compared with the shapes
the config implies before any tensor is allocated.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from avsbench.data.atomic import (
    MANIFEST_FILE,
    check_manifest,
    folder_unit,
    recover_folder,
    write_file_synced,
    write_manifest,
)
from avsbench.data.bigfile import BigFile
from avsbench.data.root import resolve_root
from avsbench.errors import AvsbenchWarning, InputFormatError, MissingDataError
from avsbench.model.clip_text import CLIP_TEXT_PREFIX, ClipTextTower
from avsbench.model.config import ModelConfig
from avsbench.model.laff import LaffModel
from avsbench.model.text import TextPipeline, WordVectors, read_vocab_file

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "weights.safetensors"
BOW_VOCAB_FILE = "bow_vocab.txt"
GRU_VOCAB_FILE = "gru_vocab.txt"
TRAIN_STATE_FILE = "train_state.pt"
OWN_FILES = (CONFIG_FILE, WEIGHTS_FILE, BOW_VOCAB_FILE, GRU_VOCAB_FILE, TRAIN_STATE_FILE, MANIFEST_FILE)
HEADER_MAX_BYTES = 100 << 20


class IncompleteModelWarning(AvsbenchWarning):
    """The model folder is from a training run that did not finish (interrupted, or still running)."""


@dataclass
class LoadedModel:
    """A model ready for inference (eval mode), its text pipeline and its config."""

    model: LaffModel
    text_pipeline: TextPipeline
    config: ModelConfig


def save_model(
    model_dir: str | Path,
    model: LaffModel,
    *,
    bow_vocab: list[str] | None = None,
    gru_vocab: list[str] | None = None,
    complete: bool = True,
    extra_files: Mapping[str, bytes] | None = None,
    clip_text: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write ``model`` (and its vocabularies) to ``model_dir`` in our format, as a unit; returns the folder.

    ``complete=False`` marks a model saved while training runs. ``extra_files`` (name -> bytes)
    are written in the same unit (e.g. the resumable training state). Other files a user put in
    the folder are kept. The caller's model and config are not changed. ``clip_text``: a CLIP
    text tower (OpenAI text keys), stored in the same weights file under the ``clip_text.``
    prefix so that the model can compute CLIP text features online.
    """
    model_dir = Path(model_dir)
    config = dataclasses.replace(
        model.config,
        bow_vocab_file=BOW_VOCAB_FILE if bow_vocab is not None else None,
        gru_vocab_file=GRU_VOCAB_FILE if gru_vocab is not None else None,
        complete=complete,
    )
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tensors.update({CLIP_TEXT_PREFIX + k: v.detach().to("cpu").contiguous() for k, v in (clip_text or {}).items()})
    files: dict[str, bytes | str] = {WEIGHTS_FILE: save(tensors, metadata={"format": "pt", "config_version": "1"})}
    if bow_vocab is not None:
        files[BOW_VOCAB_FILE] = "".join(w + "\n" for w in bow_vocab)
    if gru_vocab is not None:
        files[GRU_VOCAB_FILE] = "".join(w + "\n" for w in gru_vocab)
    files.update(extra_files or {})
    files[CONFIG_FILE] = config.to_json()
    with folder_unit(model_dir) as staging:
        for name, data in files.items():
            write_file_synced(staging / name, data)
        _keep_user_files(model_dir, staging)
        write_manifest(staging, files, {"complete": complete})
    return model_dir


def _keep_user_files(old_dir: Path, staging: Path) -> None:
    """Hard-link (or copy) into the new folder what the old one holds besides our own files."""
    if not old_dir.is_dir():
        return
    for entry in os.scandir(old_dir):
        if entry.name in OWN_FILES:
            continue
        target = staging / entry.name
        if entry.is_dir(follow_symlinks=False):
            shutil.copytree(entry.path, target, symlinks=True, copy_function=_link_or_copy)
        else:
            _link_or_copy(entry.path, str(target))


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


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
    pipeline raises :class:`MissingDataError` when asked to featurize text. A model from an
    unfinished training run loads with an :class:`IncompleteModelWarning`.
    """
    model_dir = Path(model_dir)
    config, bow_vocab, gru_vocab = read_model_folder(model_dir)
    weights_path = model_dir / WEIGHTS_FILE
    check_weight_shapes(weights_path, config, len(gru_vocab) if gru_vocab else None)
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


def read_model_folder(model_dir: Path) -> tuple[ModelConfig, list[str] | None, list[str] | None]:
    """The checked config and vocabularies of a model folder (manifest verified; nothing large allocated)."""
    if not model_dir.is_dir():
        recover_folder(model_dir)
        if not model_dir.is_dir():
            raise MissingDataError("model folder not found", path=model_dir)
    recover_folder(model_dir)
    check_manifest(model_dir)
    config = ModelConfig.read(model_dir / CONFIG_FILE)
    if not config.complete:
        epochs = len(config.metrics.get("history", []))
        warnings.warn(
            f"{model_dir}: the model is from a training run that did not finish ({epochs} epoch(s) trained); "
            "'avsbench train --resume' continues it",
            IncompleteModelWarning,
            stacklevel=3,
        )
    bow_vocab = _read_vocab(model_dir, config.bow_vocab_file)
    gru_vocab = _read_vocab(model_dir, config.gru_vocab_file)
    if not (model_dir / WEIGHTS_FILE).is_file():
        raise MissingDataError("model weights not found", path=model_dir / WEIGHTS_FILE)
    return config, bow_vocab, gru_vocab


def _read_vocab(model_dir: Path, name: str | None) -> list[str] | None:
    """A vocabulary named in the config: a file inside the model folder (checked by the config), not a link out."""
    if not name:
        return None
    path = model_dir / name
    if path.is_symlink() or not path.resolve().is_relative_to(model_dir.resolve()):
        raise InputFormatError(f"vocabulary file {name!r} is outside the model folder", path=model_dir / CONFIG_FILE)
    return read_vocab_file(path)


def read_safetensors_header(path: Path) -> dict[str, dict]:
    """The tensor entries (dtype, shape, offsets) of a safetensors file, reading only its header."""
    if not path.is_file():
        raise MissingDataError("model weights not found", path=path)
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        length = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 2 <= length <= min(HEADER_MAX_BYTES, size - 8):
            raise InputFormatError("not a safetensors file (bad header length)", path=path)
        raw = fh.read(length)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise InputFormatError("not a safetensors file (header is not JSON)", path=path) from None
    if not isinstance(header, dict):
        raise InputFormatError("not a safetensors file (header is not an object)", path=path)
    entries = {k: v for k, v in header.items() if k != "__metadata__"}
    for name, entry in entries.items():
        shape = entry.get("shape") if isinstance(entry, dict) else None
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise InputFormatError(f"tensor {name[:80]!r} has no valid shape in the header", path=path)
    return entries


def expected_weight_shapes(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Shapes the config implies for the weights that grow with its numbers (feature maps and fusion)."""
    shapes: dict[str, tuple[int, ...]] = {}
    for side, specs in (("video", config.video_features), ("text", config.text_features)):
        for i, spec in enumerate(specs):
            if spec.transform == "linear":
                shapes[f"{side}_transforms.{i}.linear.weight"] = (config.common_dim, spec.dim)
            if spec.transform == "tile" or spec.batch_norm:
                shapes[f"{side}_transforms.{i}.bn.weight"] = (config.common_dim,)
        if config.fusion == "attention":
            shapes[f"{side}_fusion.weight"] = (config.heads, config.head_dim)
    for i, spec in enumerate(config.video_features):
        if spec.kind == "frame":
            shapes[f"frame_blocks.{i}.scorer.weight"] = (1, spec.dim)
    gru = config.text_feature_of_kind("gru")
    if gru is not None:
        shapes["gru.rnn.weight_hh_l0"] = (3 * gru.dim, gru.dim)
        shapes["gru.rnn.weight_ih_l0"] = (3 * gru.dim, config.word_dim)
    return shapes


def check_weight_shapes(weights_path: Path, config: ModelConfig, gru_vocab_size: int | None) -> None:
    """Compare the safetensors header with the config before building the model (a memory bound)."""
    header = read_safetensors_header(weights_path)
    expected = expected_weight_shapes(config)
    if gru_vocab_size:
        expected["gru.embedding.weight"] = (gru_vocab_size, config.word_dim)
    for name, shape in expected.items():
        if name not in header:
            raise InputFormatError(f"weights do not match config.json: no tensor {name!r}", path=weights_path)
        if tuple(header[name]["shape"]) != shape:
            raise InputFormatError(
                f"weights do not match config.json: {name} is {tuple(header[name]['shape'])}",
                path=weights_path,
                expected=f"{shape}",
            )


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
            raise InputFormatError(
                f"feature {spec.name!r} is {found}-d", path=folder, expected=f"{spec.dim}-d as the model was trained"
            )
    if missing:
        raise MissingDataError(
            f"the collection lacks {len(missing)} feature(s) the model needs: {', '.join(missing)}",
            path=collection_dir,
            expected="FeatureData/<feature>/ for every video feature of the model",
        )


def model_info(model_dir: str | Path) -> dict:
    """A summary of a model folder: features (name, kind, dim, transform), heads, parameters, training metrics."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", IncompleteModelWarning)  # info reports it in its own words
        loaded = load_model(model_dir, "cpu")
    config = loaded.config
    features = {
        side: [
            {"name": s.name, "kind": s.kind, "dim": s.dim, "transform": s.transform, "batch_norm": s.batch_norm}
            for s in specs
        ]
        for side, specs in (("video_features", config.video_features), ("text_features", config.text_features))
    }
    return {
        "path": str(Path(model_dir)),
        "common_dim": config.common_dim,
        "heads": config.heads,
        "head_dim": config.head_dim,
        "fusion": config.fusion,
        **features,
        "parameters": sum(p.numel() for p in loaded.model.parameters()),
        "bow_vocab_size": len(loaded.text_pipeline.bow_vocab or []),
        "gru_vocab_size": len(loaded.text_pipeline.gru_vocab or []),
        "w2v": config.w2v,
        "complete": config.complete,
        "epochs_trained": len(config.metrics.get("history", [])),
        "epochs_configured": config.training.get("settings", {}).get("epochs"),
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


def training_summary(info: Mapping) -> str:
    """``best epoch 2 of 2 trained, 5 configured (incomplete)`` for :func:`model_info`'s result."""
    text = f"best epoch {info['metrics'].get('best_epoch')} of {info['epochs_trained']} trained"
    if info["epochs_configured"] is not None:
        text += f", {info['epochs_configured']} configured"
    if not info["complete"]:
        text += " (incomplete)"
    elif info["epochs_configured"] is not None and info["epochs_trained"] < info["epochs_configured"]:
        text += " (stopped early)"
    return text
