"""Build LAFF checkpoints in the released layout around a CLIP model (tests and benchmarks).

The text side is the reference's CLIP path only (``CLIP_encoder_transform``: BatchNorm on the
CLIP vector tiled over the heads), the video side one Linear per feature; the whole OpenAI CLIP
state dict sits under ``txt_net.encoder.CLIP_encoder.ClipModel.`` as in released checkpoints.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor

CLIP_MODEL_PREFIX = "txt_net.encoder.CLIP_encoder.ClipModel."


def _fusion_heads(prefix: str, heads: int, head_dim: int, gen: torch.Generator) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for i in range(heads):
        out[f"{prefix}{i}.embedding_common.0.weight"] = torch.randn(1, head_dim, generator=gen) * head_dim**-0.5
        out[f"{prefix}{i}.embedding_common.0.bias"] = torch.randn(1, generator=gen) * 0.1
        out[f"{prefix}{i}.global_emb_weight_net.weight"] = torch.ones(1, 1)
    return out


def laff_state_with_clip(
    clip_model: dict[str, Tensor], *, heads: int, video_dims: dict[str, int], seed: int = 0, head_dim: int | None = None
) -> OrderedDict[str, Tensor]:
    """A LAFF state dict (released key layout) whose CLIP text feature comes from ``clip_model``.

    The head dim is the CLIP embedding size unless given.
    """
    gen = torch.Generator().manual_seed(seed)
    head_dim = head_dim or int(clip_model["text_projection"].shape[1])
    common = heads * head_dim
    state: OrderedDict[str, Tensor] = OrderedDict()
    for name, dim in video_dims.items():
        state[f"vis_net.VisMutiTransformNet.{name}.fc1.weight"] = torch.randn(common, dim, generator=gen) * dim**-0.5
        state[f"vis_net.VisMutiTransformNet.{name}.fc1.bias"] = torch.randn(common, generator=gen) * 0.01
    state.update(_fusion_heads("vis_net.attention_layer.attention_layer.", heads, head_dim, gen))
    bn = "txt_net.transform_layer.CLIP_encoder_transform.bn1."
    state[bn + "weight"] = 1 + 0.1 * torch.randn(common, generator=gen)
    state[bn + "bias"] = 0.1 * torch.randn(common, generator=gen)
    state[bn + "running_mean"] = 0.05 * torch.randn(common, generator=gen)
    state[bn + "running_var"] = 0.5 + torch.rand(common, generator=gen)
    state[bn + "num_batches_tracked"] = torch.tensor(1000)
    state.update(_fusion_heads("txt_net.attention_layer.attention_layer.", heads, head_dim, gen))
    state.update({CLIP_MODEL_PREFIX + k: v for k, v in clip_model.items()})
    return state


def save_checkpoint(path, state: dict[str, Tensor]) -> None:
    """Save as the reference trainer does (``{'model': state_dict, 'epoch': ...}``)."""
    torch.save({"model": state, "epoch": 3, "best_perf": 0.5}, path)
