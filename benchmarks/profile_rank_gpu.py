"""Where the GPU ranking time goes: pinned allocation, reading alone, compute alone, the engine.

python benchmarks/profile_rank_gpu.py --data /tmp/v3c1-bench   (after bench_rank.py generated it)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import bench_rank  # noqa: E402

from avsbench.ranking.engine import RankSettings, rank_shots  # noqa: E402
from avsbench.ranking.pipeline import _video_sources  # noqa: E402
from avsbench.ranking.stream import ChunkReader  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="/tmp/v3c1-bench")
    args = ap.parse_args()
    root = Path(args.data)
    bench_rank.generate(root, bench_rank.V3C1_SHOTS, 0)
    bench_rank.page_cache(root)
    loaded, collection, topics, text = bench_rank._text_and_model(root, "cuda")
    shots = collection.searchable_shots
    sources, _ = _video_sources(loaded, collection, shots)
    n = len(shots)
    for chunk_rows, threads, slots in ((65536, 8, 3), (32768, 16, 3), (16384, 16, 4)):
        t = time.perf_counter()
        reader = ChunkReader(sources, n, chunk_rows, slots=slots, pin_memory=True, io_threads=threads)
        alloc = time.perf_counter() - t
        t = time.perf_counter()
        for chunk in reader:
            reader.release(chunk)
        read = time.perf_counter() - t
        reader.close()
        print(
            f"reader chunk={chunk_rows} threads={threads} slots={slots}: pinned alloc {alloc:.2f} s, read all "
            f"{read:.2f} s ({28.8 / read:.1f} GB/s)",
            flush=True,
        )
    names = [s.name for s in sources]
    x = {nm: torch.randn(16384, s.dim, device="cuda") for nm, s in zip(names, sources)}
    for prec in ("fp32", "bf16"):
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=prec == "bf16"):
            loaded.model.encode_videos(x)
            torch.cuda.synchronize()
            t = time.perf_counter()
            for _ in range(n // 16384 + 1):
                emb = loaded.model.encode_videos(x)
                loaded.model.similarity(text.cuda(), emb.float())
            torch.cuda.synchronize()
        print(f"compute only {prec}: {time.perf_counter() - t:.2f} s for {n:,} shots", flush=True)
    for kw in ({}, {"chunk_rows": 32768, "io_threads": 16}, {"chunk_rows": 16384, "io_threads": 16}):
        torch.cuda.synchronize()
        t = time.perf_counter()
        out = rank_shots(loaded.model, sources, shots, text, RankSettings(device="cuda", precision="fp32", **kw))
        print(f"rank_shots fp32 {kw}: {time.perf_counter() - t:.2f} s (engine {out.seconds:.2f} s)", flush=True)
    print("floor", bench_rank.run_floor(root, "cuda", "fp32"), flush=True)


if __name__ == "__main__":
    main()
