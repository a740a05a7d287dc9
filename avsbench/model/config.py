"""The model configuration: a versioned, human-readable JSON document (no pickles).

It says everything needed to rebuild a :class:`~avsbench.model.laff.LaffModel` from its
weights: the common space, the heads, the video features (video-level and frame-level, in
stacking order), the text features (in stacking order) and the vocabulary files.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from avsbench.errors import ConfigError, InputFormatError, MissingDataError

CONFIG_FORMAT = "avsbench-laff"
CONFIG_VERSION = 1

VIDEO_KINDS = ("video", "frame")
TEXT_KINDS = ("gru", "bow", "w2v", "precomputed")
TRANSFORMS = ("linear", "tile")
FUSIONS = ("attention", "mean")
CONFIG_MAX_BYTES = 16 << 20

# Inclusive bounds of the numbers in a config (far above any real LAFF model, far below sizes
# that would exhaust memory before the weights are even compared).
INT_BOUNDS: dict[str, tuple[int, int]] = {
    "dim": (1, 1 << 22),
    "common_dim": (1, 1 << 16),
    "heads": (1, 1024),
    "word_dim": (1, 1 << 14),
    "max_frames": (1, 1 << 16),
}
FLOAT_BOUNDS: dict[str, tuple[float, float]] = {"dropout": (0.0, 1.0)}


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
    complete: bool = True  # False while training runs (or after it was interrupted)

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
        for side, specs, kinds in (
            ("video", self.video_features, VIDEO_KINDS),
            ("text", self.text_features, TEXT_KINDS),
        ):
            names = [s.name for s in specs]
            for name in names:
                check_plain_name(name, f"{side} feature name")
            if len(set(names)) != len(names):
                raise ConfigError(f"duplicate {side} feature names: {names}")
            for spec in specs:
                if spec.kind not in kinds:
                    raise ConfigError(
                        f"{side} feature {spec.name!r} has unknown kind {spec.kind!r}", expected=", ".join(kinds)
                    )
                if spec.transform not in TRANSFORMS:
                    raise ConfigError(
                        f"feature {spec.name!r} has unknown transform {spec.transform!r}",
                        expected=", ".join(TRANSFORMS),
                    )
                if spec.transform == "tile" and spec.dim != self.head_dim:
                    raise ConfigError(
                        f"feature {spec.name!r} ({spec.dim}-d) cannot take the tile path",
                        expected=f"dim equal to the head dim {self.head_dim}",
                    )
                if spec.dim < 1:
                    raise ConfigError(f"feature {spec.name!r} has dim {spec.dim}")
        for vocab in (self.bow_vocab_file, self.gru_vocab_file):
            if vocab is not None:
                check_plain_name(vocab, "vocabulary file")
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
            raise InputFormatError(
                f"not an avsbench model config (format {str(data.get('format'))[:40]!r})",
                path=path,
                expected=f"format {CONFIG_FORMAT!r}",
            )
        version = data.get("version")
        if not isinstance(version, int) or version > CONFIG_VERSION:
            raise InputFormatError(
                f"unsupported config version {version!r}", path=path, expected=f"version <= {CONFIG_VERSION}"
            )
        body = {k: v for k, v in data.items() if k not in ("format", "version")}
        try:
            check_fields(cls, body, "config")
            body["video_features"] = [
                _feature_spec(s, f"video_features[{i}]") for i, s in enumerate(body["video_features"])
            ]
            body["text_features"] = [
                _feature_spec(s, f"text_features[{i}]") for i, s in enumerate(body["text_features"])
            ]
            config = cls(**body)
        except ConfigError as exc:
            raise InputFormatError(exc.message, path=path, expected=exc.expected) from None
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
        if path.stat().st_size > CONFIG_MAX_BYTES:
            raise InputFormatError(
                f"model config of {path.stat().st_size:,} bytes",
                path=path,
                expected=f"at most {CONFIG_MAX_BYTES:,} bytes",
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputFormatError(f"not valid JSON ({exc})", path=path) from None
        if not isinstance(data, dict):
            raise InputFormatError("not a JSON object", path=path)
        return cls.from_dict(data, path)


def check_plain_name(name: str, what: str) -> None:
    """Raise :class:`ConfigError` unless ``name`` is one plain path component (no folder, no ``..``)."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if not name or len(parts) != 1 or parts[0] in (".", "..") or any(ord(c) < 32 for c in name):
        raise ConfigError(
            f"{what} {name!r} is not a plain name",
            expected="a name inside the model folder: no '/', no '..', not absolute",
        )


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint).replace("typing.", "")


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type of a dataclass field (``int`` excludes bool and float)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if origin is list:
        return isinstance(value, list)
    if origin is dict:
        return isinstance(value, dict)
    return isinstance(value, hint) if isinstance(hint, type) else False


def check_fields(cls: type, values: dict[str, Any], where: str) -> None:
    """Check ``values`` against the fields of dataclass ``cls``: known keys, required ones present,
    JSON types as annotated (no null where a value is needed), numbers within :data:`INT_BOUNDS`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}", expected=", ".join(fields))
    required = [
        n for n, f in fields.items() if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [n for n in required if n not in values]
    if missing:
        raise ConfigError(f"{where}: missing key(s) {missing}")
    for name, value in values.items():
        if not _matches(value, hints[name]):
            found = "null" if value is None else f"{type(value).__name__} {json.dumps(value)[:40]}"
            raise ConfigError(f"{where}.{name} is {found}", expected=_type_name(hints[name]))
        low, high = INT_BOUNDS.get(name) or FLOAT_BOUNDS.get(name) or (None, None)
        if low is not None and not low <= value <= high:
            raise ConfigError(f"{where}.{name} is {value}", expected=f"a number from {low} to {high}")


def _feature_spec(value: Any, where: str) -> FeatureSpec:
    if not isinstance(value, dict):
        raise ConfigError(f"{where} is not an object", expected="a feature object with name, dim and kind")
    check_fields(FeatureSpec, value, where)
    return FeatureSpec(**value)
