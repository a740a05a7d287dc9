"""Training and encoding throughput of avsbench's LAFF against a reference-style baseline.

Synthetic data of the issue's shape (default 120,000 captions over 24,000 videos; video
features 512/2048/2048/2048; text bow (4,000 words) + w2v (500-d) + precomputed CLIP 512),
generated in memory and in a temporary folder (word vectors as a BigFile).

Ours: text features computed once for the whole dataset (TextPipeline.corpus), all tensors
on the device, one GEMM per feature for all heads, batches gathered by tensor indexing.
Baseline (measured in the same process, same arithmetic): what the reference loop does per
step: tokenise and build bow/w2v vectors in Python for each caption of the batch, copy video
rows one by one, and run the 8 heads in a Python loop (one LAFF block and one loss per head).

    python benchmarks/bench_train.py                       # CPU, 2 threads, a few steps
    python benchmarks/bench_train.py --device cuda --steps 50
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from avsbench.data.bigfile import BigFile
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel
from avsbench.model.text import TextPipeline, WordVectors, content_tokens, tokenize
from avsbench.model.train import SplitData, TrainSettings, train_step, triplet_loss

VIDEO_DIMS = {"clip512": 512, "wsl2048": 2048, "ircsn2048": 2048, "rx101_2048": 2048}


def synthetic_captions(n: int, vocab: list[str], rng: np.random.Generator) -> list[str]:
    lengths = rng.integers(5, 13, size=n)
    words = rng.integers(0, len(vocab), size=int(lengths.sum()))
    out, pos = [], 0
    for length in lengths:
        out.append(" ".join(vocab[w] for w in words[pos : pos + length]))
        pos += length
    return out


def make_config(common_dim: int, heads: int, bow_size: int) -> ModelConfig:
    head_dim = common_dim // heads
    video = [
        FeatureSpec(
            n,
            d,
            "video",
            "tile" if d == head_dim else "linear",
            batch_norm=d == head_dim,
            dropout=0.0 if d == head_dim else 0.2,
        )
        for n, d in VIDEO_DIMS.items()
    ]
    text = [
        FeatureSpec("bow", bow_size, "bow"),
        FeatureSpec("w2v", 500, "w2v"),
        FeatureSpec(
            "clip", 512, "precomputed", "tile" if head_dim == 512 else "linear", batch_norm=head_dim == 512, dropout=0.0
        ),
    ]
    return ModelConfig(video_features=video, text_features=text, common_dim=common_dim, heads=heads)


class PerHeadBaseline(nn.Module):
    """Reference-style LAFF: same parameters, but one LAFF block per head in a Python loop."""

    def __init__(self, ours: LaffModel) -> None:
        super().__init__()
        self.ours = ours
        self.heads, self.head_dim = ours.config.heads, ours.config.head_dim

    def _fuse(self, fusion, stacked: torch.Tensor) -> torch.Tensor:
        outs = []
        for h in range(self.heads):  # the reference's per-head loop
            x = stacked[:, :, h * self.head_dim : (h + 1) * self.head_dim]
            logits = x @ fusion.weight[h] + fusion.bias[h]
            e = (logits.softmax(dim=1)[..., None] * x).sum(dim=1)
            outs.append(e / (e.norm(dim=-1, keepdim=True) + 1e-14))
        return torch.stack(outs, dim=1)

    def encode_videos(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        mapped = [t(inputs[s.name]) for t, s in zip(self.ours.video_transforms, self.ours.config.video_features)]
        return self._fuse(self.ours.video_fusion, torch.stack(mapped, dim=1))

    def encode_texts(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        mapped = [t(inputs[s.name]) for t, s in zip(self.ours.text_transforms, self.ours.config.text_features)]
        return self._fuse(self.ours.text_fusion, torch.stack(mapped, dim=1))


def python_text_features(
    texts: list[str], bow_index: dict[str, int], w2v: dict[str, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-caption Python featurization, as the reference's collate does every step."""
    bow = np.zeros((len(texts), len(bow_index)), dtype=np.float32)
    means = np.zeros((len(texts), 500), dtype=np.float32)
    for i, text in enumerate(texts):
        tokens = content_tokens(tokenize(text))
        for t in tokens:
            if t in bow_index:
                bow[i, bow_index[t]] += 1
        vectors = [w2v[t] for t in set(tokens) if t in w2v]
        if vectors:
            means[i] = np.mean(np.stack(vectors).astype(np.float64), axis=0)
    return bow, means


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--captions", type=int, default=120_000)
    parser.add_argument("--videos", type=int, default=24_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4, help="timed training steps per variant (after 1 warm-up)")
    parser.add_argument("--encode-rows", type=int, default=4096, help="videos encoded for the encode throughput")
    parser.add_argument("--common-dim", type=int, default=4096)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--amp", action="store_true", help="bfloat16 autocast (CUDA) for our training step")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    rng = np.random.default_rng(0)
    torch.manual_seed(0)

    vocab = [f"w{i}" for i in range(5000)]
    bow_words = vocab[:4000]
    texts = synthetic_captions(args.captions, vocab, rng)
    ids = [f"video{i % args.videos}#{i // args.videos}" for i in range(args.captions)]
    with tempfile.TemporaryDirectory() as tmp:
        w2v_table = rng.standard_normal((len(vocab), 500)).astype(np.float32)
        BigFile.write(Path(tmp) / "w2v", vocab, w2v_table)
        clip = BigFile.write(Path(tmp) / "clip", ids, rng.standard_normal((args.captions, 512)).astype(np.float32))
        config = make_config(args.common_dim, args.heads, len(bow_words))
        pipeline = TextPipeline(config, bow_vocab=bow_words, word_vectors=WordVectors(Path(tmp) / "w2v"))
        t0 = time.perf_counter()
        corpus = pipeline.corpus(texts, ids, {"clip": clip}).to(device)
        featurize_seconds = time.perf_counter() - t0
        video_arrays = {n: rng.standard_normal((args.videos, d)).astype(np.float32) for n, d in VIDEO_DIMS.items()}
        data = SplitData(
            corpus,
            torch.tensor([i % args.videos for i in range(args.captions)], device=device),
            {n: torch.from_numpy(a).to(device) for n, a in video_arrays.items()},
            args.videos,
        )
        clip_rows = clip.data
        model = LaffModel(config).to(device)
        settings = TrainSettings(batch_size=args.batch_size)
        optimizer = torch.optim.RMSprop(model.parameters(), lr=settings.lr)
        model.train()
        batches = [torch.randint(0, args.captions, (args.batch_size,), device=device) for _ in range(args.steps + 1)]

        amp = args.amp and device.type == "cuda"
        baseline = PerHeadBaseline(model)
        bow_index = {w: i for i, w in enumerate(bow_words)}
        w2v_dict = {w: w2v_table[i] for i, w in enumerate(vocab)}
        row_of_clip = clip.row_of

        def baseline_step(rows: torch.Tensor) -> None:
            picked = rows.cpu().tolist()
            bow, means = python_text_features([texts[i] for i in picked], bow_index, w2v_dict)
            clip_batch = np.stack([np.array(clip_rows[row_of_clip[ids[i]]]) for i in picked])
            video_rows = [i % args.videos for i in picked]
            videos = {
                n: torch.from_numpy(np.stack([a[r] for r in video_rows])).to(device) for n, a in video_arrays.items()
            }
            text_inputs = {
                "bow": torch.from_numpy(bow).to(device),
                "w2v": torch.from_numpy(means).to(device),
                "clip": torch.from_numpy(clip_batch).to(device),
            }
            text_emb = baseline.encode_texts(text_inputs)
            video_emb = baseline.encode_videos(videos)
            vr = torch.tensor(video_rows, device=device)
            loss = sum(
                triplet_loss(text_emb[:, h : h + 1], video_emb[:, h : h + 1], vr, 0.2) for h in range(args.heads)
            )
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
            optimizer.step()

        # Alternate ours and the baseline step by step, so that both see the same machine load.
        ours_seconds = baseline_seconds = 0.0
        for i, rows in enumerate(batches):
            t0 = time.perf_counter()
            train_step(model, optimizer, data, rows, settings, amp)
            sync(device)
            t1 = time.perf_counter()
            baseline_step(rows)
            sync(device)
            t2 = time.perf_counter()
            if i > 0:  # the first pair is the warm-up
                ours_seconds += t1 - t0
                baseline_seconds += t2 - t1
        ours_step, baseline_step_s = ours_seconds / args.steps, baseline_seconds / args.steps

        model.eval()
        encode_rows = min(args.encode_rows, args.videos)
        chunk = 1024
        with torch.no_grad():
            chunks = [
                {n: v[start : start + chunk] for n, v in data.video_inputs.items()}
                for start in range(0, encode_rows, chunk)
            ]
            model.encode_videos(chunks[0])
            baseline.encode_videos(chunks[0])
            ours_time = base_time = 0.0
            for inputs in chunks:
                t0 = time.perf_counter()
                model.encode_videos(inputs)
                sync(device)
                t1 = time.perf_counter()
                baseline.encode_videos(inputs)
                sync(device)
                ours_time += t1 - t0
                base_time += time.perf_counter() - t1
            ours_enc, base_enc = encode_rows / ours_time, encode_rows / base_time

    ours_cps, base_cps = args.batch_size / ours_step, args.batch_size / baseline_step_s
    print(
        f"device={device} threads={args.threads} captions={args.captions} videos={args.videos} batch={args.batch_size} "
        f"common={args.common_dim}/{args.heads} heads, video {'/'.join(map(str, VIDEO_DIMS.values()))}, text "
        f"bow{len(bow_words)}+w2v500+clip512"
    )
    print(
        f"text featurization once for all {args.captions} captions: {featurize_seconds:.1f} s "
        f"({args.captions / featurize_seconds:,.0f} captions/s)"
    )
    print(f"training  ours:     {ours_step * 1000:8.1f} ms/step  {ours_cps:10,.0f} captions/s")
    print(
        f"training  baseline: {baseline_step_s * 1000:8.1f} ms/step  {base_cps:10,.0f} captions/s   (per-step Python "
        f"text features + per-head loop)"
    )
    print(f"training  ratio ours/baseline: {ours_cps / base_cps:.2f}x")
    print(f"encode    ours:     {ours_enc:10,.0f} shots/s")
    print(f"encode    baseline: {base_enc:10,.0f} shots/s   (per-head loop)")
    print(f"encode    ratio ours/baseline: {ours_enc / base_enc:.2f}x")
    print("reproduce: .venv/bin/python " + " ".join(sys.argv))


if __name__ == "__main__":
    main()
