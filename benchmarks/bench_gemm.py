"""What the CPU can do for LAFF's video encoder: GEMM rates per precision and the shots/s they allow.

LAFF at the AVS shape (common space 4096, video features 512 on the tile path + three 2048-d
linear features) spends 2 x 6144 x 4096 = 50.3 MFLOP per shot in its three feature GEMMs; the
rest (tanh, fusion, scoring) is small. This prints, at that shape and ``--threads`` threads,
the rate of a plain fp32 GEMM, a bf16 GEMM and an int8 dynamically quantized Linear (what
``--precision int8`` runs), the shots/s bound each implies, and the rate the ``--precision``
aim of 8,000 shots/s would need. It also says whether the CPU has AMX or AVX512-BF16 units.

    .venv/bin/python benchmarks/bench_gemm.py
"""

from __future__ import annotations

import argparse
import time
import warnings

import torch

from avsbench.ranking.precision import cpu_has_fast_bf16

FLOP_PER_SHOT = 2 * 3 * 2048 * 4096


def rate(fn, flop: float, min_seconds: float = 2.0) -> float:
    """GFLOP/s of ``fn`` (best of repeated calls for at least ``min_seconds``)."""
    fn()
    best, spent = float("inf"), 0.0
    while spent < min_seconds:
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        best, spent = min(best, dt), spent + dt
    return flop / best / 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rows", type=int, default=1024, help="Shots per GEMM (the engine's CPU batch).")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rows, k, n = args.rows, 2048, 4096
    x, w = torch.randn(rows, k), torch.randn(n, k)
    linear = torch.nn.Linear(k, n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(
            torch.nn.Sequential(linear), {torch.nn.Linear}, dtype=torch.qint8
        )
    bf_rows = rows if cpu_has_fast_bf16() else 32  # without bf16 units a full batch takes minutes
    xb, wb = x[:bf_rows].bfloat16(), w.bfloat16()
    with torch.inference_mode():
        rates = {
            "fp32 GEMM": rate(lambda: x @ w.T, 2 * rows * k * n),
            "bf16 GEMM": rate(lambda: xb @ wb.T, 2 * bf_rows * k * n),
            "int8 dynamic Linear": rate(lambda: quantized(x), 2 * rows * k * n),
        }
    print(
        f"CPU threads {args.threads}; AMX/AVX512-BF16 units: {cpu_has_fast_bf16()}; GEMM {rows}x{k} @ {k}x{n} (bf16 "
        f"with {bf_rows} rows)"
    )
    print(f"{'precision':<22} {'GFLOP/s':>9} {'shots/s bound (GEMMs only)':>28}")
    for name, r in rates.items():
        print(f"{name:<22} {r:>9.1f} {r * 1e9 / FLOP_PER_SHOT:>28,.0f}")
    print(f"8,000 shots/s needs {8000 * FLOP_PER_SHOT / 1e9:.0f} GFLOP/s in the feature GEMMs alone")
    print(f"reproduce: .venv/bin/python benchmarks/bench_gemm.py --threads {args.threads} --rows {rows}")


if __name__ == "__main__":
    main()
