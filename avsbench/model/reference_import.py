"""Import checkpoints written by the public reference LAFF code (``model_best.pth.tar``).

The architecture is inferred from the state_dict keys and shapes only (laff.md §4): video
features from ``vis_net.VisMutiTransformNet.<X>.{fc1,bn1}`` (LAFF) or ``vis_net.<X>.{fc1,bn1}``
(LAFF-ml, with frame blocks under ``vis_net.frame_attention.<X>.0``), the number of heads from
``attention_layer.<i>``, the head dim from ``embedding_common.0.weight``, text encoders from
``txt_net.transform_layer.<enc>_transform``, the GRU from ``txt_net.encoder.rnn_encoder``.

A checkpoint written by the reference trainer pickles its config instance and argparse options.
:func:`read_reference_checkpoint` never executes their classes: a restricted unpickler maps the
reference's own classes to inert stand-ins and refuses every other global, so the vocabularies
can be recovered from ``config.t2v_bow.vocab.word2idx`` / ``config.t2v_idx.vocab.word2idx``.
"""

from __future__ import annotations

import _compat_pickle
import collections
import dataclasses
import hashlib
import importlib
import itertools
import pickle
import re
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from avsbench.errors import ConfigError, InputFormatError, MissingDataError
from avsbench.model.clip_text import ClipTextDims, split_clip_state, text_tower_dims
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel

# Modules of the reference code base whose classes become inert stand-ins.
REFERENCE_MODULES = ("configs", "textlib", "txt2vec", "bigfile", "common")
_TEXT_ENCODERS = {"rnn_encoder": "gru", "bow_encoder": "bow", "w2v_encoder": "w2v", "CLIP_encoder": "precomputed"}
_TEXT_ORDER = ("rnn_encoder", "bow_encoder", "w2v_encoder", "CLIP_encoder")
CLIP_MODEL_PREFIX = "txt_net.encoder.CLIP_encoder.ClipModel."  # OpenAI CLIP inside a LAFF checkpoint
FINETUNED_CLIP_PREFIX = "clip_model."  # the reference's fine-tuned CLIP files (StrongCLIP)
_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_IGNORED = (
    re.compile(r"\.global_emb_weight_net\.weight$"),
    re.compile(r"\.layer_norm\.(weight|bias)$"),
    re.compile(r"^txt_net\.encoder\.CLIP_encoder\."),
)


class ReferenceObject:
    """Inert stand-in for an object of a reference class: it only keeps its pickled state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_args"] = args
        self.__dict__.update(kwargs)

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2 and (state[0] is None or isinstance(state[0], dict)):
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update({str(k): v for k, v in state.items()})
        else:
            self.__dict__["_state"] = state

    def __repr__(self) -> str:
        return f"<{type(self).__module__}.{type(self).__qualname__} stand-in>"


_stand_ins: dict[tuple[str, str], type] = {}


def _stand_in(module: str, name: str) -> type:
    key = (module, name)
    if key not in _stand_ins:
        _stand_ins[key] = type(name, (ReferenceObject,), {"__module__": module, "__qualname__": name})
    return _stand_ins[key]


def _safe_reconstructor(cls: type, base: type, state: Any) -> Any:
    if not (isinstance(cls, type) and issubclass(cls, ReferenceObject)) or base is not object or state is not None:
        raise pickle.UnpicklingError(f"refusing copyreg._reconstructor for {cls!r}")
    return object.__new__(cls)


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes (latin-1 only)."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin-1")


MAX_PICKLED_ITEMS = 5_000_000  # elements one pickled constructor call may build


class _NdarrayClass:
    """Stands for ``numpy.ndarray`` in a pickle: only :func:`_safe_reconstruct` accepts it (never called)."""


def _multiarray() -> Any:
    try:
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # numpy < 2
        return importlib.import_module("numpy.core.multiarray")


def _safe_reconstruct(cls: Any, shape: Any, dtype: Any) -> Any:
    """``numpy.core.multiarray._reconstruct`` as pickles use it: an empty array that BUILD then fills."""
    if cls is not _NdarrayClass or tuple(shape) != (0,):
        raise pickle.UnpicklingError(f"refusing numpy _reconstruct with shape {shape!r}")
    return _multiarray()._reconstruct(np.ndarray, (0,), dtype)


def _numpy_global(module: str, name: str) -> Any:
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "scalar":
        return _multiarray().scalar
    if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
        return _safe_reconstruct
    if module == "numpy" and name == "ndarray":
        return _NdarrayClass
    if module == "numpy" and name == "dtype":
        return np.dtype
    if module == "numpy.dtypes" and name.endswith("DType") and hasattr(np.dtypes, name):
        return getattr(np.dtypes, name)
    return None


def _guarded(constructor: type, accepts: tuple[type, ...]) -> Any:
    """``constructor`` callable from a pickle only on already-built values of the ``accepts`` types,
    at most two positional arguments and :data:`MAX_PICKLED_ITEMS` elements: ``bytes(N)``,
    ``list(range(...))`` or ``str`` of a shared nested structure cannot amplify a small file."""

    def build(*args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) > 2 or not all(isinstance(a, accepts) for a in args):
            shown = ", ".join(type(a).__name__ for a in args)
            raise pickle.UnpicklingError(f"refusing {constructor.__name__}({shown}) in a pickled config")
        if any(hasattr(a, "__len__") and len(a) > MAX_PICKLED_ITEMS for a in args):
            raise pickle.UnpicklingError(f"refusing {constructor.__name__} of more than {MAX_PICKLED_ITEMS:,} items")
        return constructor(*args)

    build.__name__ = build.__qualname__ = f"guarded_{constructor.__name__}"
    return build


_CONTAINERS = (str, bytes, bytearray, list, tuple, dict, set, frozenset)
_NUMBERS = (str, bytes, int, float, bool)
_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): _guarded(collections.OrderedDict, (list, tuple, dict)),
    ("collections", "Counter"): _guarded(collections.Counter, (dict, list, tuple, str)),
    ("collections", "defaultdict"): _guarded(collections.defaultdict, (type(None), type(lambda: 0), dict)),
    ("builtins", "int"): _guarded(int, _NUMBERS),
    ("builtins", "float"): _guarded(float, _NUMBERS),
    ("builtins", "complex"): _guarded(complex, _NUMBERS),
    ("builtins", "bool"): _guarded(bool, _NUMBERS),
    ("builtins", "str"): _guarded(str, (str, bytes)),
    ("builtins", "bytes"): _guarded(bytes, (str, bytes)),
    ("builtins", "bytearray"): _guarded(bytearray, (str, bytes)),
    ("builtins", "list"): _guarded(list, _CONTAINERS),
    ("builtins", "tuple"): _guarded(tuple, _CONTAINERS),
    ("builtins", "set"): _guarded(set, _CONTAINERS),
    ("builtins", "frozenset"): _guarded(frozenset, _CONTAINERS),
    ("builtins", "dict"): _guarded(dict, (dict, list, tuple)),
    ("builtins", "slice"): _guarded(slice, (int, type(None))),
    ("builtins", "object"): object,
    ("copyreg", "_reconstructor"): _safe_reconstructor,
    ("_codecs", "encode"): _latin1_encode,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch", "Size"): _guarded(torch.Size, (list, tuple)),
    ("torch", "device"): _guarded(torch.device, (str, int)),
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only tensors, plain containers, numpy scalars/arrays and reference stand-ins."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _compat_pickle.NAME_MAPPING:  # Python 2 names written by protocols < 3
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "argparse" and name == "Namespace":
            return _stand_in(module, name)
        if module.split(".")[0] in REFERENCE_MODULES:
            return _stand_in(module, name)
        if (
            module == "torch"
            and name.endswith("Storage")
            or module == "torch"
            and isinstance(getattr(torch, name, None), torch.dtype)
        ):
            return getattr(torch, name)
        found = _numpy_global(module, name)
        if found is not None:
            return found
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _restricted_load(file: Any, **kwargs: Any) -> Any:
    return RestrictedUnpickler(file, **kwargs).load()


restricted_pickle = types.ModuleType("avsbench_restricted_pickle")
restricted_pickle.Unpickler = RestrictedUnpickler  # type: ignore[attr-defined]
restricted_pickle.load = _restricted_load  # type: ignore[attr-defined]


@dataclass
class ReferenceCheckpoint:
    """The parts of a reference checkpoint: state_dict and (plain or stand-in) config/options."""

    path: Path
    state_dict: dict[str, Tensor]
    config: Any
    opt: Any
    epoch: Any
    best_perf: Any


def _load_checkpoint_object(path: Path) -> Any:
    """``torch.load`` through the restricted unpickler; one clear error otherwise.

    Not torch's own ``weights_only`` loader: it lets ``bytearray(N)`` through, so a tiny file
    could allocate gigabytes.
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=False, pickle_module=restricted_pickle)
    except MemoryError:
        raise InputFormatError(
            "not enough memory to read the checkpoint", path=path, expected="a reference checkpoint that fits in memory"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any failure of an untrusted file is one clear error
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputFormatError(f"cannot read reference checkpoint: {message[:300]}", path=path) from None


def _check_tensors(state: dict[str, Tensor], path: Path) -> None:
    """Every tensor must own the memory it spans (no zero or overlapping strides that would expand on copy)."""
    for key, tensor in state.items():
        needed = tensor.numel() * tensor.element_size()
        if tensor.numel() > 1 and needed > tensor.untyped_storage().nbytes():
            raise InputFormatError(
                f"tensor {key} of shape {tuple(tensor.shape)} spans more memory than it stores",
                path=path,
                expected="contiguous tensors as torch.save writes them",
            )


def read_reference_checkpoint(path: str | Path) -> ReferenceCheckpoint:
    """Load a reference checkpoint on CPU without executing any pickled class."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError("reference checkpoint not found", path=path)
    raw = _load_checkpoint_object(path)
    if isinstance(raw, dict) and "model" in raw:
        state = raw["model"]
    elif isinstance(raw, dict) and all(isinstance(v, Tensor) for v in raw.values()):
        state, raw = raw, {}
    else:
        raise InputFormatError(
            "not a reference LAFF checkpoint", path=path, expected="a dict with a 'model' state_dict"
        )
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()):
        raise InputFormatError("the 'model' entry is not a state_dict of tensors", path=path)
    _check_tensors(state, path)
    return ReferenceCheckpoint(
        path, dict(state), raw.get("config"), raw.get("opt"), raw.get("epoch"), raw.get("best_perf")
    )


def _field(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _vocab_words(config: Any, plain_key: str, vec_attr: str) -> list[str] | None:
    """Word list from ``config[plain_key]`` or ``config.<vec_attr>.vocab.word2idx`` (ordered by index)."""
    words = _field(config, plain_key)
    if words is not None:
        return [str(w) for w in words]
    word2idx = _field(_field(_field(config, vec_attr), "vocab"), "word2idx")
    if isinstance(word2idx, dict):
        ordered = sorted(((int(i), str(w)) for w, i in word2idx.items()))
        if [i for i, _ in ordered] != list(range(len(ordered))):
            raise ConfigError(f"reference vocabulary {vec_attr}.vocab.word2idx has non-contiguous indices")
        return [w for _, w in ordered]
    return None


def reference_vocabularies(checkpoint: ReferenceCheckpoint) -> tuple[list[str] | None, list[str] | None]:
    """(bow vocabulary, GRU vocabulary) recovered from the checkpoint's config, when present."""
    return (
        _vocab_words(checkpoint.config, "bow_vocab_words", "t2v_bow"),
        _vocab_words(checkpoint.config, "gru_vocab_words", "t2v_idx"),
    )


def _clip_feature_name(config: Any) -> str:
    clip = _field(_field(config, "text_encoding"), "CLIP_encoding")
    name = _field(clip, "dir_name")
    return str(name) if name else "clip"


def _split_module_key(rest: str) -> tuple[str, str, str] | None:
    """``<name>.fc1.weight`` -> (name, 'fc1', 'weight'); cut at the LAST ``.fc1.`` / ``.bn1.``."""
    cut = max(rest.rfind(".fc1."), rest.rfind(".bn1."))
    if cut < 0:
        return None
    return rest[:cut], rest[cut + 1 : cut + 4], rest[cut + 5 :]


def _heads(state: dict[str, Tensor], prefix: str) -> tuple[Tensor, Tensor]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)\.embedding_common\.0\.weight$")
    indices = sorted(int(m.group(1)) for k in state if (m := pattern.match(k)))
    if not indices or indices != list(range(len(indices))):
        raise ConfigError(f"no attention heads under {prefix}<i>.embedding_common.0 in the state_dict")
    weight = torch.cat([state[f"{prefix}{i}.embedding_common.0.weight"] for i in indices], dim=0)
    bias = torch.cat([state[f"{prefix}{i}.embedding_common.0.bias"] for i in indices], dim=0)
    return weight, bias


@dataclass
class ConvertedReference:
    config: ModelConfig
    state_dict: dict[str, Tensor]
    gru_vocab_size: int | None


@dataclass
class _VideoLayout:
    """Where a layout keeps its video transforms and fusion heads (LAFF or LAFF-ml)."""

    prefix: str
    heads_prefix: str
    skip: tuple[str, ...]


def _video_layout(state: dict[str, Tensor]) -> _VideoLayout:
    if any(k.startswith("vis_net.vis_attention_layer.") for k in state):
        skip = ("vis_net.vis_attention_layer.", "vis_net.frame_attention.", "vis_net.attention_layer.")
        return _VideoLayout("vis_net.", "vis_net.vis_attention_layer.attention_layer.", skip)
    if any(k.startswith("vis_net.VisMutiTransformNet.") for k in state):
        return _VideoLayout("vis_net.VisMutiTransformNet.", "vis_net.attention_layer.attention_layer.", ())
    raise ConfigError(
        "unknown reference layout: no vis_net.VisMutiTransformNet.* or vis_net.vis_attention_layer.* keys"
    )


class _Converter:
    """Maps a reference state_dict to ours step by step, recording which keys it used."""

    def __init__(self, state: dict[str, Tensor]) -> None:
        self.state = state
        self.used: set[str] = set()
        self.ours: dict[str, Tensor] = {}
        self.layout = _video_layout(state)
        video_weight, video_bias = self.fusion_heads(self.layout.heads_prefix)
        self.heads, self.head_dim = video_weight.shape
        self.common = self.heads * self.head_dim
        self.ours["video_fusion.weight"], self.ours["video_fusion.bias"] = video_weight, video_bias
        text_weight, text_bias = self.fusion_heads("txt_net.attention_layer.attention_layer.")
        if tuple(text_weight.shape) != (self.heads, self.head_dim):
            raise ConfigError(
                f"text heads {tuple(text_weight.shape)} differ from video heads {(self.heads, self.head_dim)}"
            )
        self.ours["text_fusion.weight"], self.ours["text_fusion.bias"] = text_weight, text_bias

    def take(self, key: str) -> Tensor:
        self.used.add(key)
        return self.state[key]

    def fusion_heads(self, prefix: str) -> tuple[Tensor, Tensor]:
        self.used.update(k for k in self.state if k.startswith(prefix) and "embedding_common" in k)
        return _heads(self.state, prefix)

    def transform(self, target: str, label: str, fc1: dict[str, str] | None, bn1: dict[str, str] | None) -> int:
        """Map one reference transform (fc1 and/or bn1) to ours under ``target``; return its
        input dim (the head dim for the no-transform path)."""
        dim = self.head_dim
        if fc1 is not None:
            weight = self.take(fc1["weight"])
            if weight.shape[0] != self.common:
                raise ConfigError(f"{label} maps to {weight.shape[0]}-d", expected=f"{self.common}-d common space")
            dim = weight.shape[1]
            self.ours[f"{target}.linear.weight"] = weight
            self.ours[f"{target}.linear.bias"] = self.take(fc1["bias"])
        if bn1 is not None:
            for part in _BN_KEYS:
                self.ours[f"{target}.bn.{part}"] = self.take(bn1[part])
        return int(dim)

    def video_modules(self) -> dict[str, dict[str, dict[str, str]]]:
        """Video feature name -> {'fc1'|'bn1' -> {param -> state key}}, in state_dict order."""
        modules: dict[str, dict[str, dict[str, str]]] = {}
        prefix, skip = self.layout.prefix, self.layout.skip
        for key in self.state:
            if not key.startswith(prefix) or any(key.startswith(s) for s in skip):
                continue
            parts = _split_module_key(key[len(prefix) :])
            if parts is not None:
                modules.setdefault(parts[0], {}).setdefault(parts[1], {})[parts[2]] = key
        return modules

    def video_features(self) -> list[FeatureSpec]:
        """Map every video transform (and LAFF-ml frame block); return the video feature specs."""
        modules = self.video_modules()
        frame_pattern = re.compile(r"^vis_net\.frame_attention\.(.+)\.0\.embedding_common\.0\.weight$")
        frame_names = [m.group(1) for k in self.state if (m := frame_pattern.match(k))]
        missing_frames = [n for n in frame_names if n not in modules]
        if missing_frames:
            raise ConfigError(f"frame blocks without a video transform: {missing_frames}")
        return [
            self.video_feature(i, name, parts, name in frame_names) for i, (name, parts) in enumerate(modules.items())
        ]

    def video_feature(self, i: int, name: str, parts: dict[str, dict[str, str]], is_frame: bool) -> FeatureSpec:
        fc1, bn1 = parts.get("fc1"), parts.get("bn1")
        if fc1 is None and bn1 is None:
            raise ConfigError(f"video feature {name!r} has neither fc1 nor bn1 weights")
        data_name = name[len("Frame_") :] if is_frame and name.startswith("Frame_") else name
        dim = self.transform(f"video_transforms.{i}", f"video feature {name!r}", fc1, bn1)
        if is_frame:
            block = f"vis_net.frame_attention.{name}.0.embedding_common.0."
            frame_w = self.take(block + "weight")
            self.ours[f"frame_blocks.{i}.scorer.weight"] = frame_w
            self.ours[f"frame_blocks.{i}.scorer.bias"] = self.take(block + "bias")
            if fc1 is None:
                dim = int(frame_w.shape[1])
        return FeatureSpec(
            name=data_name,
            dim=dim,
            kind="frame" if is_frame else "video",
            transform="linear" if fc1 is not None else "tile",
            batch_norm=bn1 is not None,
            dropout=0.2 if fc1 is not None else 0.0,
            reference_name=name if data_name != name else None,
        )

    def text_modules(self) -> dict[str, dict[str, dict[str, str]]]:
        modules: dict[str, dict[str, dict[str, str]]] = {}
        for key in self.state:
            m = re.match(r"^txt_net\.transform_layer\.(.+)_transform\.(fc1|bn1)\.(.+)$", key)
            if m:
                modules.setdefault(m.group(1), {}).setdefault(m.group(2), {})[m.group(3)] = key
        unknown = [n for n in modules if n not in _TEXT_ENCODERS]
        if unknown:
            raise ConfigError(f"unsupported reference text encoder(s): {unknown}", expected=", ".join(_TEXT_ORDER))
        return modules

    def text_features(self, clip_feature_name: str) -> tuple[list[FeatureSpec], int | None]:
        """Map every text transform (and the GRU); return the text specs and the GRU vocabulary size."""
        modules = self.text_modules()
        specs: list[FeatureSpec] = []
        gru_vocab_size: int | None = None
        for enc in (e for e in _TEXT_ORDER if e in modules):
            fc1, bn1 = modules[enc].get("fc1"), modules[enc].get("bn1")
            kind = _TEXT_ENCODERS[enc]
            dim = self.transform(f"text_transforms.{len(specs)}", f"text encoder {enc!r}", fc1, bn1)
            if kind == "gru":
                gru_vocab_size = self.gru(dim)
            specs.append(
                FeatureSpec(
                    name=kind if kind != "precomputed" else clip_feature_name,
                    dim=dim,
                    kind=kind,
                    transform="linear" if fc1 is not None else "tile",
                    batch_norm=bn1 is not None,
                    dropout=0.2 if fc1 is not None else 0.0,
                    reference_name=enc,
                )
            )
        return specs, gru_vocab_size

    def gru(self, dim: int) -> int:
        """Map the reference GRU (one layer, unidirectional); return its vocabulary size."""
        rnn = "txt_net.encoder.rnn_encoder."
        if any("_reverse" in k or "_l1" in k for k in self.state if k.startswith(rnn)):
            raise ConfigError("only one-layer unidirectional reference GRUs are supported")
        embedding = self.take(rnn + "we.weight")
        self.ours["gru.embedding.weight"] = embedding
        for part in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            self.ours[f"gru.rnn.{part}"] = self.take(rnn + "rnn." + part)
        hidden = self.state[rnn + "rnn.weight_hh_l0"].shape[1]
        if dim != hidden:
            raise ConfigError(f"GRU hidden size {hidden} but its transform takes {dim}-d")
        return int(embedding.shape[0])

    def check_all_keys_understood(self) -> None:
        leftover = [k for k in self.state if k not in self.used and not any(p.search(k) for p in _IGNORED)]
        if leftover:
            shown = ", ".join(leftover[:5]) + (" ..." if len(leftover) > 5 else "")
            raise ConfigError(f"{len(leftover)} reference state_dict key(s) not understood: {shown}")


def convert_reference_state_dict(state: dict[str, Tensor], clip_feature_name: str = "clip") -> ConvertedReference:
    """Infer the architecture from a reference state_dict and map its weights to our names.

    The CLIP model under ``txt_net.encoder.CLIP_encoder.`` is not part of our LAFF model (see
    :func:`clip_text_weights_from_checkpoint`).
    """
    converter = _Converter(state)
    video_specs = converter.video_features()
    text_specs, gru_vocab_size = converter.text_features(clip_feature_name)
    converter.check_all_keys_understood()
    ours = converter.ours
    word_dim = int(ours["gru.embedding.weight"].shape[1]) if "gru.embedding.weight" in ours else 500
    config = ModelConfig(
        video_features=video_specs,
        text_features=text_specs,
        common_dim=converter.common,
        heads=converter.heads,
        fusion="attention",
        word_dim=word_dim,
        frame_mask=True,
    )
    config.validate()
    return ConvertedReference(config, {k: v.detach().clone().contiguous() for k, v in ours.items()}, gru_vocab_size)


def model_from_reference(converted: ConvertedReference, frame_mask: bool = True) -> LaffModel:
    """Build our model with the converted weights (strict load), in eval mode."""
    model = LaffModel(
        dataclasses.replace(converted.config, frame_mask=frame_mask), gru_vocab_size=converted.gru_vocab_size
    )
    model.load_state_dict(converted.state_dict, strict=True)
    return model.eval()


def _plain(obj: Any, depth: int = 0, budget: list[int] | None = None) -> Any:
    """A JSON-safe copy of small option objects (tensors, deep nesting and more than 2,000 values
    in all are summarised, so shared nested structures cannot blow up)."""
    budget = [2000] if budget is None else budget
    budget[0] -= 1
    if depth > 4 or budget[0] < 0:
        return "..."
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj if not isinstance(obj, str) else obj[:1000]
    if isinstance(obj, np.generic):
        return _plain(obj.item(), depth, budget)
    if isinstance(obj, Tensor):
        return f"<tensor {tuple(obj.shape)}>"
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1, budget) for v in itertools.islice(obj, 50)]
    if isinstance(obj, dict):
        return {str(k)[:200]: _plain(v, depth + 1, budget) for k, v in itertools.islice(obj.items(), 100)}
    if isinstance(obj, ReferenceObject):
        items = itertools.islice(obj.__dict__.items(), 100)
        return {k: _plain(v, depth + 1, budget) for k, v in items if k != "_args"}
    return repr(obj)[:200]


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class ClipTextWeights:
    """A CLIP text tower taken from a checkpoint: OpenAI text keys, sizes, and where it came from."""

    state: dict[str, Tensor]
    dims: ClipTextDims
    origin: dict[str, Any]


def _clip_text_weights(keys: dict[str, Tensor], path: Path, prefix: str, weights: str) -> ClipTextWeights:
    text, others = split_clip_state(keys)
    dims = text_tower_dims(text, path=path, prefix=prefix)
    visual = [k for k in others if k.startswith("visual.")]
    origin = {
        "weights": weights,
        "file": str(path.resolve()),
        "key_prefix": prefix,
        "text_keys": len(text),
        "skipped_visual_keys": len(visual),
        "skipped_other_keys": [prefix + k for k in others if k not in visual][:20],
    }
    return ClipTextWeights({k: v.float() for k, v in text.items()}, dims, origin)


def clip_text_weights_from_checkpoint(checkpoint: ReferenceCheckpoint) -> ClipTextWeights | None:
    """The CLIP text tower under ``txt_net.encoder.CLIP_encoder.ClipModel.`` (None when absent).

    The visual tower and ``logit_scale`` are skipped (and counted).
    """
    keys = {k[len(CLIP_MODEL_PREFIX) :]: v for k, v in checkpoint.state_dict.items() if k.startswith(CLIP_MODEL_PREFIX)}
    if not keys:
        return None
    return _clip_text_weights(keys, checkpoint.path, CLIP_MODEL_PREFIX, "the LAFF checkpoint's own CLIP (ClipModel)")


def read_finetuned_clip_weights(path: str | Path) -> ClipTextWeights:
    """The text tower of a fine-tuned CLIP file, as the reference's "StrongCLIP" predictor loads it.

    Its keys start with ``clip_model.`` (11 characters, stripped); what follows is OpenAI's CLIP
    key name, possibly under the reference's ``ClipModel.`` module.
    """
    return _finetuned_clip_weights(read_reference_checkpoint(path))


def _finetuned_clip_weights(checkpoint: ReferenceCheckpoint) -> ClipTextWeights:
    path = checkpoint.path
    state = checkpoint.state_dict
    keys = {k[len(FINETUNED_CLIP_PREFIX) :]: v for k, v in state.items() if k.startswith(FINETUNED_CLIP_PREFIX)}
    if not keys:
        shown = ", ".join(list(state)[:3]) or "no keys"
        raise InputFormatError(
            f"not a fine-tuned CLIP file (keys: {shown})",
            path=path,
            expected="keys clip_model.<CLIP name> (TextData/clip_finetune_*/model_best.pth.tar)",
        )
    prefix = FINETUNED_CLIP_PREFIX
    if all(k.startswith("ClipModel.") for k in keys):
        keys = {k[len("ClipModel.") :]: v for k, v in keys.items()}
        prefix += "ClipModel."
    return _clip_text_weights(keys, checkpoint.path, prefix, "fine-tuned CLIP file (--clip-weights)")


def read_clip_text_weights(path: str | Path) -> ClipTextWeights:
    """A CLIP text tower from a LAFF checkpoint (its ClipModel) or a fine-tuned CLIP file (``clip_model.*``)."""
    checkpoint = read_reference_checkpoint(path)
    weights = clip_text_weights_from_checkpoint(checkpoint) or _finetuned_clip_weights(checkpoint)
    weights.origin["sha256"] = sha256_file(Path(path))
    return weights


def _check_clip_fits(weights: ClipTextWeights, config: ModelConfig, own: ClipTextWeights | None, path: Path) -> None:
    """A tower must give the model's CLIP feature dim; a replacement must have the checkpoint's own sizes."""
    feature = next((s for s in config.text_features if s.reference_name == "CLIP_encoder"), None)
    if feature is None:
        raise ConfigError(
            "the checkpoint has no CLIP text feature (txt_net.transform_layer.CLIP_encoder_transform)",
            expected="a LAFF checkpoint with a CLIP text encoder for --clip-weights",
        )
    if weights.dims.embed != feature.dim:
        raise InputFormatError(
            f"CLIP text tower gives {weights.dims.embed}-d features",
            path=path,
            expected=f"{feature.dim}-d, the model's CLIP text feature {feature.name!r}",
        )
    if own is not None and own.dims != weights.dims:
        raise InputFormatError(
            f"a CLIP of another architecture: text tower {weights.dims.to_dict()}",
            path=path,
            expected=f"the checkpoint's own {own.dims.to_dict()}",
        )


def _choose_clip_text(
    checkpoint: ReferenceCheckpoint, config: ModelConfig, clip_weights: str | Path | None, checkpoint_sha256: str
) -> ClipTextWeights | None:
    own = clip_text_weights_from_checkpoint(checkpoint)
    chosen = read_finetuned_clip_weights(clip_weights) if clip_weights is not None else own
    if chosen is not None:
        _check_clip_fits(chosen, config, own, Path(clip_weights) if clip_weights is not None else checkpoint.path)
        chosen.origin["sha256"] = checkpoint_sha256 if chosen is own else sha256_file(Path(chosen.origin["file"]))
        if own is not None and chosen is not own:
            chosen.origin["replaces"] = own.origin["weights"]
            chosen.origin["skipped_visual_keys_of_checkpoint"] = own.origin["skipped_visual_keys"]
    return chosen


def _check_vocabularies(
    converted: ConvertedReference, bow_vocab: list[str] | None, gru_vocab: list[str] | None, path: str | Path
) -> None:
    bow = converted.config.text_feature_of_kind("bow")
    if bow is not None and (bow_vocab is None or len(bow_vocab) != bow.dim):
        found = "none" if bow_vocab is None else f"{len(bow_vocab)} words"
        raise ConfigError(
            f"bag-of-words vocabulary in the checkpoint config: {found}",
            path=path,
            expected=f"{bow.dim} words (config.t2v_bow.vocab)",
        )
    if converted.config.text_feature_of_kind("gru") is not None and (
        gru_vocab is None or len(gru_vocab) != converted.gru_vocab_size
    ):
        found = "none" if gru_vocab is None else f"{len(gru_vocab)} words"
        raise ConfigError(
            f"GRU vocabulary in the checkpoint config: {found}",
            path=path,
            expected=f"{converted.gru_vocab_size} words (config.t2v_idx.vocab)",
        )


def import_reference_checkpoint(
    path: str | Path,
    out_dir: str | Path,
    w2v: str | Path | None = None,
    clip_feature: str | None = None,
    frame_mask: bool = True,
    clip_weights: str | Path | None = None,
) -> ModelConfig:
    """Convert a reference checkpoint into our format in ``out_dir``; returns the written config.

    ``clip_feature`` names the precomputed CLIP text feature (``TextData/<name>/``); by default the
    config's ``text_encoding.CLIP_encoding.dir_name`` when the checkpoint has it, else ``clip``.
    ``frame_mask=False`` keeps the reference's unmasked frame softmax (LAFF-ml; same embeddings,
    the reference's frame weights). The CLIP text tower of the checkpoint (or of ``clip_weights``,
    a fine-tuned CLIP file) is kept so that CLIP text features can be computed online; its visual
    tower is skipped.
    """
    from avsbench.model.checkpoint import CONFIG_FILE, save_model

    checkpoint = read_reference_checkpoint(path)
    converted = convert_reference_state_dict(
        checkpoint.state_dict, clip_feature or _clip_feature_name(checkpoint.config)
    )
    bow_vocab, gru_vocab = reference_vocabularies(checkpoint)
    _check_vocabularies(converted, bow_vocab, gru_vocab, path)
    digest = sha256_file(Path(path))
    clip_text = _choose_clip_text(checkpoint, converted.config, clip_weights, digest)
    config = converted.config
    if w2v is not None:
        config.w2v = str(Path(w2v).expanduser().resolve())
    config.source = {
        "imported_from": str(Path(path).resolve()),
        "sha256": digest,
        "layout": "LAFF-ml" if any(s.kind == "frame" for s in config.video_features) else "LAFF",
        "epoch": _plain(checkpoint.epoch),
        "best_perf": _plain(checkpoint.best_perf),
        "opt": _plain(checkpoint.opt),
    }
    if clip_text is not None:
        config.source["clip_text"] = clip_text.origin
    model = model_from_reference(converted, frame_mask=frame_mask)
    config = model.config
    save_model(
        out_dir,
        model,
        bow_vocab=bow_vocab if config.text_feature_of_kind("bow") else None,
        gru_vocab=gru_vocab if config.text_feature_of_kind("gru") else None,
        clip_text=clip_text.state if clip_text is not None else None,
    )
    return ModelConfig.read(Path(out_dir) / CONFIG_FILE)
