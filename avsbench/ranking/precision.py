"""Device and precision policy of a ranking pass, resolved once into a :class:`RankPlan`, and the
certificate that makes a screened (bf16 / int8) ranking equal the float32 one.

* ``fp32``: encoding and scoring in float32; the kept top-k is the answer.
* ``bf16`` and ``int8`` (screening precisions): the pass encodes with a cheaper approximation of
  the model, bf16 autocast (AMX CPUs, GPUs) or int8 dynamically quantized Linear layers (x86 and
  ARM CPUs without fast bf16: about 1.8x the fp32 GEMM rate on AVX2); scores are always computed
  in float32 from those embeddings (bf16 scores would tie by the thousand). Each topic keeps
  ``top_k + margin`` candidates. After the pass a prefix of every topic's candidates is
  re-encoded in float32 and re-scored, and the final top-k comes from those exact scores.

The certificate, per topic: with ``err`` the largest |approximate - fp32| score difference seen
on the re-scored candidates and on :func:`error_sample_rows` (shots spread evenly over the
collection, re-scored too), no shot outside the prefix can reach the fp32 k-th score if
``first approximate score left out + 2 * err < fp32 k-th score`` (:func:`certified`). Topics
that fail get a longer prefix; those that fail with every candidate re-scored are ranked again by
a float32 pass (:meth:`RankPlan.exact`).
"""

from __future__ import annotations

import copy
import os
import warnings
from dataclasses import dataclass, replace
from typing import TypeVar, cast

import numpy as np
import torch
from torch import nn

from avsbench.errors import ConfigError

PRECISIONS = ("auto", "fp32", "bf16", "int8")
SCREENING_PRECISIONS = ("bf16", "int8")
# int8 encodes ~1.7x faster than fp32 on AVX2: re-scoring more than a quarter of the shots in fp32 loses
SCREENING_MAX_RESCORED = 0.25
DEVICES = ("auto", "cpu", "cuda")
ModuleT = TypeVar("ModuleT", bound=nn.Module)
CERTIFICATE_SAFETY = 2.0
ERROR_SAMPLE_SHOTS = 1024  # evenly spaced shots (at most 1/16 of them) whose screening error is measured too


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu."""
    if name not in DEVICES:
        raise ConfigError(f"unknown device {name!r}", expected="auto, cpu or cuda")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda but torch sees no CUDA device", expected="--device cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def cpu_has_fast_bf16() -> bool:
    """True when the CPU has AMX or AVX512-BF16 units (bf16 GEMMs much faster than fp32)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return bool({"amx_bf16", "avx512_bf16"} & set(flags.split()))


def cpu_has_int8_kernels() -> bool:
    """True when torch has a quantized engine for dynamic int8 Linear layers on this CPU."""
    return bool({"x86", "fbgemm", "qnnpack"} & set(torch.backends.quantized.supported_engines))


def resolve_precision(
    name: str, device: torch.device, *, shots: int | None = None, candidates: int | None = None
) -> str:
    """``auto`` -> on a CPU, bf16 where it runs bf16 GEMMs fast (AMX, AVX512-BF16), else int8
    where torch has int8 kernels, else fp32; on a GPU fp32 (its pass is bound by streaming the
    features from the page cache, so a bf16 pass saves little and its re-scoring reads cost more:
    slower end to end on an H200). Every choice gives the fp32 ranking. Given the number of
    ``shots`` and of ``candidates`` (topics x top-k), ``auto`` screens only when the fp32
    re-scoring touches at most :data:`SCREENING_MAX_RESCORED` of the shots (else fp32 is faster)."""
    if name not in PRECISIONS:
        raise ConfigError(f"unknown precision {name!r}", expected="auto, fp32, bf16 or int8")
    if name == "int8" and device.type != "cpu":
        raise ConfigError("--precision int8 runs on the CPU only", expected="--precision bf16 or fp32 on a GPU")
    if name == "int8" and not cpu_has_int8_kernels():
        raise ConfigError(
            "this torch build has no quantized engine for int8 on this CPU", expected="--precision fp32 or auto"
        )
    if name != "auto":
        return name
    if shots is not None and candidates is not None and candidates > SCREENING_MAX_RESCORED * shots:
        return "fp32"
    if device.type == "cuda":
        return "fp32"
    if cpu_has_fast_bf16():
        return "bf16"
    return "int8" if cpu_has_int8_kernels() else "fp32"


def int8_screening_model(model: ModuleT) -> ModuleT:
    """A copy of ``model`` whose Linear layers run as dynamically quantized int8 GEMMs (CPU)."""
    with warnings.catch_warnings():  # torch marks its eager quantization API as deprecated; 2.13 (pinned) has it
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)
    return cast(ModuleT, quantized.eval())  # the same class, its Linear layers swapped in place


@dataclass
class RankSettings:
    """Knobs of one ranking pass, as the user gives them (``None`` = a default chosen for the device)."""

    top_k: int = 1000
    precision: str = "auto"
    device: str = "auto"
    batch_size: int | None = None
    chunk_rows: int | None = None
    rescore_margin: int | None = None
    io_threads: int | None = None


@dataclass(frozen=True)
class RankPlan:
    """A ranking pass with every choice made: what :func:`plan_ranking` resolves from :class:`RankSettings`."""

    device: torch.device
    precision: str
    top_k: int
    batch: int  # shots per encoder call
    chunk_rows: int  # shots per read (a whole number of batches)
    candidates: int  # per topic kept by the pass (top_k, plus the re-scoring margin when screening)
    io_threads: int

    @property
    def screening(self) -> bool:
        """True when the pass runs in an approximate precision and the candidates are re-scored in fp32."""
        return self.precision in SCREENING_PRECISIONS

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def exact(self) -> RankPlan:
        """The same pass in float32 (for topics the certificate could not settle)."""
        return replace(self, precision="fp32", candidates=self.top_k)


def plan_ranking(settings: RankSettings, *, shots: int | None = None, topics: int | None = None) -> RankPlan:
    """Resolve device, precision (``auto`` weighs ``shots`` against ``topics`` x top-k), batch,
    chunk, candidates per topic and read threads, once for the whole pass."""
    device = resolve_device(settings.device)
    candidates = None if topics is None else topics * settings.top_k
    precision = resolve_precision(settings.precision, device, shots=shots, candidates=candidates)
    if settings.top_k < 1:
        raise ConfigError(f"top-k {settings.top_k}", expected="a positive number of shots")
    cuda = device.type == "cuda"
    batch = settings.batch_size or (16384 if cuda else 1024)
    # CPU: encoding is ~1000x slower than reading a page-cached row, so small chunks (less RSS)
    rows = settings.chunk_rows or (65536 if cuda else 1024)
    margin = (
        (settings.rescore_margin if settings.rescore_margin is not None else settings.top_k)
        if precision in SCREENING_PRECISIONS
        else 0
    )
    return RankPlan(
        device=device,
        precision=precision,
        top_k=settings.top_k,
        batch=batch,
        chunk_rows=max(batch, rows // batch * batch),
        candidates=settings.top_k + margin,
        io_threads=settings.io_threads
        or (min(8, os.cpu_count() or 1) if cuda else 1),  # GPU: page-cache copies are the bound
    )


def error_sample_rows(n_shots: int, excluded: np.ndarray) -> np.ndarray:
    """Shot-list positions spread evenly over the collection (at most 1/16 of it, at most
    :data:`ERROR_SAMPLE_SHOTS`) whose screening error is measured too; never an excluded one."""
    evenly = np.linspace(0, n_shots - 1, min(n_shots // 16, ERROR_SAMPLE_SHOTS)).astype(np.int64)
    return np.setdiff1d(evenly, excluded)


def certified(exact: np.ndarray, approx: np.ndarray, held: int, capacity: int, top_k: int, err: float) -> bool:
    """Whether no shot outside the re-scored prefix (``exact``, the fp32 scores of the first
    candidates) can reach the fp32 top-k, given the largest approximation error ``err``.

    ``approx`` are the topic's held candidates (approximate scores, best first); a heap holding
    fewer than ``capacity`` saw every eligible shot."""
    if exact.size == held and held < capacity:
        return True  # every eligible shot was re-scored
    if exact.size < top_k:
        return False
    left_out = float(approx[exact.size]) if exact.size < held else float(approx[-1])
    kth = float(np.partition(exact, exact.size - top_k)[exact.size - top_k])
    return left_out + CERTIFICATE_SAFETY * err < kth


def screening_error(
    prefix: list[np.ndarray], approx: list[np.ndarray], sampled_exact: np.ndarray, sampled_approx: np.ndarray
) -> float:
    """The largest |approximate - fp32| score difference over every topic's re-scored prefix
    (``prefix[t]`` against the first of ``approx[t]``) and over the evenly spread sample."""
    err = max((float(np.max(np.abs(p - a[: p.size]))) for p, a in zip(prefix, approx) if p.size), default=0.0)
    sampled = sampled_exact.astype(np.float64) - sampled_approx
    return max(err, float(np.max(np.abs(sampled))) if sampled.size else 0.0)
