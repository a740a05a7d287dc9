"""What writing a model folder as a unit and verifying its manifest on load costs (issue 11, item 4).

Saves a LAFF model at the AVS shape (common space 4096, 8 heads; video features 2048, 1024 and
768-d, a 5000-word bag of words and a 512-d CLIP text feature: about 150 MB of weights) and, in
the same process, times:

* ``load_model`` (manifest sizes and SHA-256 verified, header checked, weights read, model built)
  against the same load with the manifest's SHA-256 skipped (sizes only): the ratio is the
  price of the checksum;
* ``save_model`` (staging folder, fsync, manifest, swap) against writing the same files in place.

On this shared 2-core VM (best of 3): load 0.86 s verified against 0.74 s with sizes only (1.17x);
save 1.20 s as a unit against 0.63 s in place without fsync (1.91x: the fsync and the hashing).

    PYTHONPATH=. OMP_NUM_THREADS=1 /work/venv/bin/python benchmarks/bench_model_load.py --repeats 3
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from unittest import mock

from safetensors.torch import save

from avsbench.data import atomic
from avsbench.model import checkpoint
from avsbench.model.checkpoint import load_model, save_model
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel

VOCAB = [f"word{i}" for i in range(5000)]


def best_of(repeats: int, action) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    config = ModelConfig(
        video_features=[FeatureSpec(f"v{d}", d, "video") for d in (2048, 1024, 768)],
        text_features=[FeatureSpec("bow", 5000, "bow"), FeatureSpec("clip", 512, "precomputed")],
        common_dim=4096,
        heads=8,
    )
    model = LaffModel(config).eval()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        save_seconds = best_of(args.repeats, lambda: save_model(folder, model, bow_vocab=VOCAB))
        size = sum(p.stat().st_size for p in folder.iterdir())

        def plain_write() -> None:
            plain = Path(tmp) / "plain"
            plain.mkdir(exist_ok=True)
            tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            (plain / "weights.safetensors").write_bytes(save(tensors))
            (plain / "bow_vocab.txt").write_text("".join(w + "\n" for w in VOCAB))
            (plain / "config.json").write_text(config.to_json())

        plain_seconds = best_of(args.repeats, plain_write)
        verified = best_of(args.repeats, lambda: load_model(folder))
        sizes_only = lambda path: atomic.check_manifest(path, checksums=False)  # noqa: E731
        with mock.patch.object(checkpoint, "check_manifest", sizes_only):
            unverified = best_of(args.repeats, lambda: load_model(folder))
    print(f"model folder: {size / 1e6:.0f} MB; best of {args.repeats}")
    print(
        f"load_model, manifest SHA-256 verified: {verified:.3f} s; sizes only: {unverified:.3f} s; "
        f"ratio {verified / unverified:.2f}"
    )
    print(
        f"save_model as a unit: {save_seconds:.3f} s; the same files written in place: {plain_seconds:.3f} s; "
        f"ratio {save_seconds / plain_seconds:.2f}"
    )
    print("reproduce: PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_model_load.py --repeats", args.repeats)


if __name__ == "__main__":
    main()
