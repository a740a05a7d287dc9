"""The model configuration: a versioned, human-readable JSON document (no pickles).

It says everything needed to rebuild a :class:`~avsbench.model.laff.LaffModel` from its
weights: the common space, the heads, the video features (video-level and frame-level, in
stacking order), the text features (in stacking order) and the vocabulary files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from avsbench.errors import ConfigError, InputFormatError, MissingDataError

CONFIG_FORMAT = "avsbench-laff"
CONFIG_VERSION = 1

VIDEO_KINDS = ("video", "frame")
TEXT_KINDS = ("gru", "bow", "w2v", "precomputed")
TRANSFORMS = ("linear", "tile")
FUSIONS = ("attention", "mean")


@dataclass
class FeatureSpec:
    """One input feature of a side of the model.

    ``kind``: ``video`` (one vector per shot) or ``frame`` (frame-level, LAFF-ml) on the video
    side; ``gru``, ``bow``, ``w2v`` or ``precomputed`` on the text side. ``dim`` is the raw input
    width (for ``gru`` the hidden size). ``transform`` is ``linear`` (Linear + tanh + dropout,
    then BatchNorm if ``batch_norm``) or ``tile`` (the reference's no-transform path: the vector
    is repeated once per head, then BatchNorm; needs ``dim`` = head dim). ``reference_name`` is
    the name the reference code used (``Frame_<x>``, ``CLIP_encoder``...), accepted as an
    input key too.
    """

    name: str
    dim: int
    kind: str
    transform: str = "linear"
    batch_norm: bool = False
    dropout: float = 0.2
    reference_name: str | None = None

    def input_keys(self) -> tuple[str, ...]:
        """Keys under which the input of this feature may be given."""
        return (self.name,) if not self.reference_name else (self.name, self.reference_name)


@dataclass
class ModelConfig:
    """Architecture and provenance of a LAFF model."""

    video_features: list[FeatureSpec]
    text_features: list[FeatureSpec]
    common_dim: int = 4096
    heads: int = 8
    fusion: str = "attention"
    word_dim: int = 500
    frame_mask: bool = True
    max_frames: int = 50
    bow_vocab_file: str | None = None
    gru_vocab_file: str | None = None
    w2v: str | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.common_dim // self.heads

    def validate(self) -> None:
        """Raise :class:`ConfigError` if the configuration is inconsistent."""
        if self.heads < 1 or self.common_dim < 1 or self.common_dim % self.heads:
            raise ConfigError(f"common_dim {self.common_dim} is not a positive multiple of heads {self.heads}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}", expected=" or ".join(FUSIONS))
        if not self.video_features:
            raise ConfigError("the model has no video feature")
        if not self.text_features:
            raise ConfigError("the model has no text feature")
        for side, specs, kinds in (("video", self.video_features, VIDEO_KINDS), ("text", self.text_features, TEXT_KINDS)):
            names = [s.name for s in specs]
            if len(set(names)) != len(names):
                raise ConfigError(f"duplicate {side} feature names: {names}")
            for spec in specs:
                if spec.kind not in kinds:
                    raise ConfigError(f"{side} feature {spec.name!r} has unknown kind {spec.kind!r}", expected=", ".join(kinds))
                if spec.transform not in TRANSFORMS:
                    raise ConfigError(f"feature {spec.name!r} has unknown transform {spec.transform!r}", expected=", ".join(TRANSFORMS))
                if spec.transform == "tile" and spec.dim != self.head_dim:
                    raise ConfigError(
                        f"feature {spec.name!r} ({spec.dim}-d) cannot take the tile path",
                        expected=f"dim equal to the head dim {self.head_dim}",
                    )
                if spec.dim < 1:
                    raise ConfigError(f"feature {spec.name!r} has dim {spec.dim}")
        kinds_seen = [s.kind for s in self.text_features if s.kind != "precomputed"]
        if len(set(kinds_seen)) != len(kinds_seen):
            raise ConfigError("each of the gru, bow and w2v text encoders may appear once")

    def text_feature_of_kind(self, kind: str) -> FeatureSpec | None:
        for spec in self.text_features:
            if spec.kind == kind:
                return spec
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"format": CONFIG_FORMAT, "version": CONFIG_VERSION, **asdict(self)}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | Path | None = None) -> ModelConfig:
        """Build a config from its JSON form; raises :class:`InputFormatError` on a foreign or newer file."""
        if data.get("format") != CONFIG_FORMAT:
            raise InputFormatError(f"not an avsbench model config (format {data.get('format')!r})", path=path, expected=f"format {CONFIG_FORMAT!r}")
        version = data.get("version")
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise InputFormatError(f"unsupported config version {version!r}", path=path, expected=f"version <= {CONFIG_VERSION}")
        body = {k: v for k, v in data.items() if k not in ("format", "version")}
        try:
            body["video_features"] = [FeatureSpec(**s) for s in body["video_features"]]
            body["text_features"] = [FeatureSpec(**s) for s in body["text_features"]]
            config = cls(**body)
        except (KeyError, TypeError) as exc:
            raise InputFormatError(f"bad model config: {exc}", path=path) from None
        try:
            config.validate()
        except ConfigError as exc:
            raise InputFormatError(exc.message, path=path, expected=exc.expected) from None
        return config

    @classmethod
    def read(cls, path: str | Path) -> ModelConfig:
        path = Path(path)
        if not path.is_file():
            raise MissingDataError("model config not found", path=path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputFormatError(f"not valid JSON ({exc})", path=path) from None
        if not isinstance(data, dict):
            raise InputFormatError("not a JSON object", path=path)
        return cls.from_dict(data, path)
