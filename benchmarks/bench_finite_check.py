"""What checking feature rows for NaN, inf and huge values costs the ranking pass (issue 11, item 6).

The engine checks every chunk it streams with one min/max reduction per feature
(:func:`avsbench.ranking.finite.first_bad_value`). This ranks one synthetic collection with a
LAFF model at the AVS shape (a 512-d tile feature and two 2048-d linear features, common space
2048, 4 heads) twice in the same process, once with the check and once with it disabled, and
prints both rates and their ratio (on a shared machine the ratio moves by several percent from
run to run either way: the check's own cost is the chunk figure). It also times the check alone
against the encoder on one chunk: 1.0 ms against 769 ms (0.13%) on one core of this VM.

    PYTHONPATH=. OMP_NUM_THREADS=2 .venv/bin/python benchmarks/bench_finite_check.py --shots 20000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

from avsbench.data.bigfile import BigFile
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel
from avsbench.ranking import engine
from avsbench.ranking.engine import rank_shots
from avsbench.ranking.finite import first_bad_value
from avsbench.ranking.precision import RankSettings
from avsbench.ranking.stream import FeatureSource

FEATURES = [("clip512", 512, "tile"), ("irCSN2048", 2048, "linear"), ("wsl2048", 2048, "linear")]


def build(root: Path, n_shots: int) -> tuple[LaffModel, list[str]]:
    """A random collection of ``n_shots`` and an untrained model at the AVS shape."""
    rng = np.random.default_rng(0)
    shots = [f"shot{i // 20 + 1:05d}_{i % 20 + 1}" for i in range(n_shots)]
    for name, dim, _ in FEATURES:
        BigFile.write(root / name, shots, rng.standard_normal((n_shots, dim), dtype=np.float32))
    torch.manual_seed(0)
    config = ModelConfig(
        video_features=[FeatureSpec(n, d, "video", transform=t, dropout=0.0) for n, d, t in FEATURES],
        text_features=[FeatureSpec("tx", 512, "precomputed", transform="tile", dropout=0.0)],
        common_dim=2048,
        heads=4,
    )
    return LaffModel(config).eval(), shots


def rank_rate(model: LaffModel, root: Path, shots: list[str], text: torch.Tensor, repeats: int) -> float:
    """Best shots/s of ``repeats`` fp32 passes over the collection."""
    best = 0.0
    for _ in range(repeats):
        sources = [FeatureSource(name, BigFile(root / name), shots) for name, _, _ in FEATURES]
        try:
            out = rank_shots(model, sources, shots, text, RankSettings(top_k=1000, precision="fp32", device="cpu"))
        finally:
            for src in sources:
                src.close()
        best = max(best, out.shots_per_second)
    return best


def chunk_costs(model: LaffModel, root: Path, shots: list[str]) -> tuple[float, float]:
    """Seconds to check and to encode one 1024-shot chunk (best of 5)."""
    chunk = [torch.from_numpy(BigFile(root / name).read(shots[:1024])) for name, _, _ in FEATURES]
    names = [name for name, _, _ in FEATURES]

    def best_of(fn) -> float:
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return min(times)

    with torch.inference_mode():
        check = best_of(lambda: [first_bad_value(x) for x in chunk])
        encode = best_of(lambda: model.encode_videos(dict(zip(names, chunk))))
    return check, encode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shots", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model, shots = build(root, args.shots)
        with torch.inference_mode():
            text = model.encode_texts({"tx": torch.randn(50, 512)})
        check, encode = chunk_costs(model, root, shots)
        with_check = rank_rate(model, root, shots, text, args.repeats)
        with mock.patch.object(engine, "check_feature_rows", lambda *a, **k: None):
            without = rank_rate(model, root, shots, text, args.repeats)
    print(f"{args.shots:,} shots x 50 topics, fp32, {torch.get_num_threads()} threads")
    share = check / encode
    print(f"one 1024-shot chunk: check {check * 1e3:.2f} ms, encode {encode * 1e3:.1f} ms ({share:.2%} of encoding)")
    print(f"rank with the check:    {with_check:,.0f} shots/s")
    print(f"rank without the check: {without:,.0f} shots/s")
    print(f"ratio with/without: {with_check / without:.3f}")
    print(f"reproduce: PYTHONPATH=. OMP_NUM_THREADS=2 python benchmarks/bench_finite_check.py --shots {args.shots}")


if __name__ == "__main__":
    main()
