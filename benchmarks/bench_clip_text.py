"""Online CLIP text features for the 30 topics of TRECVID 2019 with a full-size (ViT-B/32) text tower.

The tower has OpenAI ViT-B/32's text sizes (width 512, 12 layers, 8 heads, 512-d output, 49,408
tokens) with seeded random weights (the speed does not depend on the values). Measured in one
process, on ``--threads`` CPU threads (default 2), median of ``--repeats``:

- ours: :meth:`ClipTextEncoder.encode` (tokenize, cut each text after its read position, pack the
  texts into one sequence without padding, last block only on the read rows; no cache between repeats);
- padded to the longest text: the same tower on one batch padded to the longest read position;
- baseline: the reference's way, every text padded to 77 tokens and encoded in one batch by the
  same tower (``clip.tokenize`` + ``encode_text``);
- cold: ours, the first call in the process, including reading the BPE vocabulary.

Wall and process CPU time are both printed: on a shared machine the wall time depends on the
other processes, the CPU time much less. The features are compared (max abs difference). Reproduce with:

    OMP_NUM_THREADS=2 python benchmarks/bench_clip_text.py --threads 2 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from avsbench.data.topics import get_year
from avsbench.model.clip_text import ClipTextDims, ClipTextEncoder, ClipTextTower, random_text_tower_state
from avsbench.model.clip_text_tokenizer import ClipTokenizer

VIT_B32 = ClipTextDims(embed=512, width=512, heads=8, layers=12, context=77, vocab=49408)


def _padded(tower: ClipTextTower, tokenizer: ClipTokenizer, texts: list[str], width: int | None) -> torch.Tensor:
    """The tower on rows padded to ``width`` tokens (None: to the longest read position)."""
    rows = tokenizer.token_lists(texts)
    read_at = [int(np.argmax(row)) for row in rows]
    width = width or max(read_at) + 1
    ids = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : min(width, len(row))] = row[:width]
    with torch.inference_mode():
        return tower(torch.from_numpy(ids), torch.tensor(read_at))


def _measure(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """name -> (median wall seconds, median process CPU seconds); the variants alternate, so that
    load from other processes hits them alike."""
    wall: dict[str, list[float]] = {name: [] for name in functions}
    cpu: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            function()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in functions}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--year", default="2019")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    texts = [t.text for t in get_year(args.year).topics()]
    tower = ClipTextTower.from_state_dict(random_text_tower_state(VIT_B32, seed=0))
    start = time.perf_counter()
    tokenizer = ClipTokenizer()
    ours = ClipTextEncoder(tower, tokenizer=tokenizer).encode(texts)
    cold = time.perf_counter() - start
    results = _measure(
        {
            "ours (packed, no padding)": lambda: ClipTextEncoder(tower, tokenizer=tokenizer).encode(texts),
            "padded to the longest text": lambda: _padded(tower, tokenizer, texts, None),
            "baseline: padded to 77": lambda: _padded(tower, tokenizer, texts, 77),
        },
        args.repeats,
    )
    difference = float((_padded(tower, tokenizer, texts, 77) - torch.from_numpy(ours)).abs().max())
    lengths = [len(tokenizer.encode(t)) + 2 for t in texts]
    print(
        f"CLIP ViT-B/32 text tower (random weights), {len(texts)} topics of {args.year}, {args.threads} threads, "
        f"median of {args.repeats}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(f"  tokens per topic: mean {statistics.mean(lengths):.1f}, max {max(lengths)} (context 77)")
    for name, (wall, cpu) in results.items():
        print(f"  {name:28s} wall {wall * 1000:8.1f} ms   CPU {cpu * 1000:8.1f} ms")
    base_wall, base_cpu = results["baseline: padded to 77"]
    our_wall, our_cpu = results["ours (packed, no padding)"]
    print(f"  ratio baseline / ours: wall {base_wall / our_wall:.2f}x, CPU {base_cpu / our_cpu:.2f}x")
    print(f"  cold first call (reads the BPE vocabulary): {cold * 1000:.1f} ms")
    print(f"  max |ours - baseline| feature difference: {difference:.2e}")
    print(
        f"reproduce: OMP_NUM_THREADS={args.threads} python benchmarks/bench_clip_text.py "
        f"--threads {args.threads} --repeats {args.repeats}"
    )


if __name__ == "__main__":
    main()
