"""CLIP's text tower in OpenAI's layout (our own implementation), fp32, as LAFF uses it online.

``x = token_embedding[ids] + positional_embedding``; ``layers`` pre-LN residual blocks, each
``x += out_proj(attention(ln_1(x)))`` under a causal mask, then ``x += c_proj(QuickGELU(c_fc(ln_2(x))))``;
``ln_final``; the row at ``argmax(ids)`` (the EOT, or the SOT when the reference's cut dropped
the EOT) times ``text_projection``. No L2 normalisation: LAFF tiles the raw vector over its heads
and applies BatchNorm, exactly as for precomputed CLIP text features.

Every dimension is read from the state dict (OpenAI's key names): embed = ``text_projection.shape[1]``,
width = ``ln_final.weight.shape[0]``, heads = width // 64, layers = the number of
``transformer.resblocks.<i>``, context = ``positional_embedding.shape[0]``.

Texts are encoded without padding: each is cut after the position that is read (under the causal
mask later tokens cannot change it) and several are packed into one sequence in which a token
attends only to its own text; the last block runs only on the rows that are read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avsbench.errors import InputFormatError
from avsbench.model.clip_text_tokenizer import ClipTokenizer, default_tokenizer

CLIP_TEXT_PREFIX = "clip_text."  # key prefix of the tower inside a model folder's weights file
HEAD_WIDTH = 64  # OpenAI's (and LAFF's) build_model rule: heads = width // 64
LAYER_NORM_EPS = 1e-5
TOP_KEYS = ("token_embedding.weight", "positional_embedding", "text_projection", "ln_final.weight", "ln_final.bias")
BLOCK_KEYS = (
    "attn.in_proj_weight",
    "attn.in_proj_bias",
    "attn.out_proj.weight",
    "attn.out_proj.bias",
    "ln_1.weight",
    "ln_1.bias",
    "mlp.c_fc.weight",
    "mlp.c_fc.bias",
    "mlp.c_proj.weight",
    "mlp.c_proj.bias",
    "ln_2.weight",
    "ln_2.bias",
)
_BLOCK = re.compile(r"^transformer\.resblocks\.(\d+)\.(.+)$")


@dataclass(frozen=True)
class ClipTextDims:
    """The sizes of a CLIP text tower, all read from its state dict."""

    embed: int
    width: int
    heads: int
    layers: int
    context: int
    vocab: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def is_text_key(key: str) -> bool:
    """Whether an OpenAI CLIP key (without prefix) belongs to the text tower."""
    return key in TOP_KEYS or bool(_BLOCK.match(key))


def split_clip_state(state: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], list[str]]:
    """(text tower keys, the other keys: ``visual.*``, ``logit_scale``...) of an OpenAI CLIP state dict."""
    text = {k: v for k, v in state.items() if is_text_key(k)}
    return text, [k for k in state if k not in text]


def _expected_shapes(dims: ClipTextDims) -> dict[str, tuple[int, ...]]:
    w = dims.width
    shapes: dict[str, tuple[int, ...]] = {
        "token_embedding.weight": (dims.vocab, w),
        "positional_embedding": (dims.context, w),
        "text_projection": (w, dims.embed),
        "ln_final.weight": (w,),
        "ln_final.bias": (w,),
    }
    per_block = {
        "attn.in_proj_weight": (3 * w, w),
        "attn.in_proj_bias": (3 * w,),
        "attn.out_proj.weight": (w, w),
        "attn.out_proj.bias": (w,),
        "ln_1.weight": (w,),
        "ln_1.bias": (w,),
        "mlp.c_fc.weight": (4 * w, w),
        "mlp.c_fc.bias": (4 * w,),
        "mlp.c_proj.weight": (w, 4 * w),
        "mlp.c_proj.bias": (w,),
        "ln_2.weight": (w,),
        "ln_2.bias": (w,),
    }
    for i in range(dims.layers):
        shapes.update({f"transformer.resblocks.{i}.{k}": v for k, v in per_block.items()})
    return shapes


def _missing_keys(keys: Sequence[str], expected: Sequence[str], prefix: str) -> str:
    missing = [prefix + k for k in expected if k not in keys]
    return ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")


def text_tower_dims(state: Mapping[str, Tensor], *, path: str | Path | None = None, prefix: str = "") -> ClipTextDims:
    """Read and check the tower's sizes; a clear error names missing keys or inconsistent shapes.

    ``prefix`` is only used in messages (the key prefix of the file the weights came from).
    """
    blocks = sorted({int(m.group(1)) for k in state if (m := _BLOCK.match(k))})
    expected = [*TOP_KEYS, *(f"transformer.resblocks.{i}.{k}" for i in blocks for k in BLOCK_KEYS)]
    absent = _missing_keys(list(state), expected, prefix) or ("" if blocks else "every transformer.resblocks.<i>")
    if absent:
        raise InputFormatError(
            f"CLIP text tower incomplete: missing {absent}", path=path, expected="OpenAI CLIP text keys"
        )
    if blocks != list(range(len(blocks))):
        raise InputFormatError(
            f"CLIP text tower has resblocks {blocks[:12]}", path=path, expected="transformer.resblocks.0..N-1"
        )
    width = int(state["ln_final.weight"].shape[0])
    if width < HEAD_WIDTH or width % HEAD_WIDTH:
        raise InputFormatError(
            f"CLIP text width {width} is not a multiple of {HEAD_WIDTH}",
            path=path,
            expected="width = heads x 64 (OpenAI's layout)",
        )
    projection = state["text_projection"]
    dims = ClipTextDims(
        embed=int(projection.shape[-1]),
        width=width,
        heads=width // HEAD_WIDTH,
        layers=len(blocks),
        context=int(state["positional_embedding"].shape[0]),
        vocab=int(state["token_embedding.weight"].shape[0]),
    )
    for key, shape in _expected_shapes(dims).items():
        if tuple(state[key].shape) != shape:
            raise InputFormatError(
                f"CLIP text key {prefix}{key} has shape {tuple(state[key].shape)}",
                path=path,
                expected=f"{shape} for a width-{width} tower",
            )
    return dims


class _Attention(nn.Module):
    """Multi-head self-attention with OpenAI's parameter names (``in_proj_weight`` holds q, k, v)."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * width))
        self.out_proj = nn.Linear(width, width)

    def forward(self, x: Tensor, mask: Tensor | None = None, queries: Tensor | None = None) -> Tensor:
        """Attend from ``queries`` (default: every row of ``x``) to ``x``; causal unless ``mask`` (True: visible)."""
        n, length, width = x.shape
        head_dim = width // self.heads
        source = x if queries is None else queries
        q = F.linear(source, self.in_proj_weight[:width], self.in_proj_bias[:width])
        q = q.view(n, -1, self.heads, head_dim).transpose(1, 2)
        kv = F.linear(x, self.in_proj_weight[width:], self.in_proj_bias[width:])
        k, v = kv.view(n, length, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=mask is None)
        return self.out_proj(out.transpose(1, 2).reshape(n, -1, width))


class _Mlp(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.c_fc = nn.Linear(width, 4 * width)
        self.c_proj = nn.Linear(4 * width, width)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.c_fc(x)
        return self.c_proj(hidden * torch.sigmoid(1.702 * hidden))  # QuickGELU


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.attn = _Attention(width, heads)
        self.ln_2 = nn.LayerNorm(width, eps=LAYER_NORM_EPS)
        self.mlp = _Mlp(width)

    def forward(self, x: Tensor, mask: Tensor | None = None, rows: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """The block on every row of ``x``, or only on the rows ``rows`` selects (they still attend to all)."""
        normed = self.ln_1(x)
        if rows is None:
            x = x + self.attn(normed, mask)
        else:
            x = rows(x) + self.attn(normed, mask, rows(normed))
        return x + self.mlp(self.ln_2(x))


class _Transformer(nn.Module):
    def __init__(self, width: int, heads: int, layers: int) -> None:
        super().__init__()
        self.resblocks = nn.ModuleList(_ResidualBlock(width, heads) for _ in range(layers))


class ClipTextTower(nn.Module):
    """The text half of OpenAI CLIP; its ``state_dict`` keys are OpenAI's text keys."""

    def __init__(self, dims: ClipTextDims) -> None:
        super().__init__()
        self.dims = dims
        self.token_embedding = nn.Embedding(dims.vocab, dims.width)
        self.positional_embedding = nn.Parameter(torch.empty(dims.context, dims.width))
        self.transformer = _Transformer(dims.width, dims.heads, dims.layers)
        self.ln_final = nn.LayerNorm(dims.width, eps=LAYER_NORM_EPS)
        self.text_projection = nn.Parameter(torch.empty(dims.width, dims.embed))

    @classmethod
    def from_state_dict(
        cls, state: Mapping[str, Tensor], *, path: str | Path | None = None, prefix: str = ""
    ) -> ClipTextTower:
        """Build the tower from OpenAI text keys (other keys are ignored), fp32, in eval mode."""
        text, _ = split_clip_state(state)
        tower = cls(text_tower_dims(text, path=path, prefix=prefix))
        tower.load_state_dict({k: v.float() for k, v in text.items()}, strict=True)
        return tower.eval()

    def forward(self, ids: Tensor, read_at: Tensor) -> Tensor:
        """(n, embed) features of token rows ``ids`` (n, length), read at positions ``read_at`` (n,).

        The last block runs only on the rows that are read.
        """
        n, length = ids.shape
        x = self.token_embedding(ids) + self.positional_embedding[:length]
        *blocks, last = self.transformer.resblocks
        for block in blocks:
            x = block(x)
        batch = torch.arange(n, device=ids.device)
        visible = (torch.arange(length, device=ids.device)[None, :] <= read_at[:, None]).view(n, 1, 1, length)
        x = last(x, visible, lambda t: t[batch, read_at].unsqueeze(1))
        return self.ln_final(x[:, 0]) @ self.text_projection

    def forward_packed(self, ids: Tensor, positions: Tensor, segments: Tensor, read: Tensor) -> Tensor:
        """(len(read), embed) features of texts packed into one sequence without padding.

        ``ids``, ``positions`` (within its text) and ``segments`` (which text) describe each token;
        a token attends to the earlier tokens of its own text only. ``read`` indexes the tokens read out.
        """
        order = torch.arange(ids.shape[0], device=ids.device)
        visible = (segments[:, None] == segments[None, :]) & (order[None, :] <= order[:, None])
        x = (self.token_embedding(ids) + self.positional_embedding[positions]).unsqueeze(0)
        *blocks, last = self.transformer.resblocks
        for block in blocks:
            x = block(x, visible)
        x = last(x, visible[read], lambda t: t[:, read])
        return self.ln_final(x[0]) @ self.text_projection


class ClipTextEncoder:
    """Texts -> CLIP text features (fp32, not normalised), as LAFF's reference computes them online."""

    def __init__(
        self,
        tower: ClipTextTower,
        *,
        truncation: str = "reference",
        tokenizer: ClipTokenizer | None = None,
        pack_tokens: int = 256,
    ) -> None:
        self.tower = tower.eval()
        self.tokenizer = tokenizer or default_tokenizer(tower.dims.context)
        if self.tokenizer.vocab_size != tower.dims.vocab:
            raise InputFormatError(
                f"CLIP text tower has {tower.dims.vocab} token embeddings",
                expected=f"{self.tokenizer.vocab_size} (CLIP's BPE vocabulary)",
            )
        self.truncation = truncation
        self.pack_tokens = max(pack_tokens, tower.dims.context)

    @property
    def dim(self) -> int:
        return self.tower.dims.embed

    def token_ids(self, texts: Sequence[str]) -> np.ndarray:
        """(n, context) int64 token rows, as the reference's ``clip.tokenize``."""
        return self.tokenizer.tokenize(texts, self.truncation)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(n, embed) float32 features of ``texts`` in order.

        Each text is cut after the position it is read at (the argmax of its ids: under the causal
        mask later tokens cannot change it), and texts are packed without padding into sequences of
        at most ``pack_tokens`` tokens in which a token attends only to its own text.
        """
        rows = self.tokenizer.token_lists(texts, self.truncation)
        used = [row[: int(np.argmax(row)) + 1] for row in rows]
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        for pack in _packs(used, self.pack_tokens):
            out[pack] = self._encode_pack([used[i] for i in pack])
        return out

    def _encode_pack(self, rows: list[list[int]]) -> np.ndarray:
        device = next(self.tower.parameters()).device
        lengths = torch.tensor([len(r) for r in rows])
        ids = torch.tensor([t for r in rows for t in r], device=device)
        segments = torch.repeat_interleave(torch.arange(len(rows)), lengths).to(device)
        ends = torch.cumsum(lengths, 0)
        positions = (torch.arange(int(ends[-1])) - torch.repeat_interleave(ends - lengths, lengths)).to(device)
        with torch.inference_mode():
            features = self.tower.forward_packed(ids, positions, segments, (ends - 1).to(device))
        return features.float().cpu().numpy()


def _packs(rows: Sequence[Sequence[int]], pack_tokens: int) -> list[list[int]]:
    """Indices of ``rows`` grouped (longest first) so that each group holds at most ``pack_tokens`` tokens."""
    packs: list[list[int]] = []
    size = pack_tokens
    for i in sorted(range(len(rows)), key=lambda i: -len(rows[i])):
        if size + len(rows[i]) > pack_tokens:
            packs.append([])
            size = 0
        packs[-1].append(i)
        size += len(rows[i])
    return packs


def random_text_tower_state(dims: ClipTextDims, seed: int = 0) -> dict[str, Tensor]:
    """OpenAI text keys with seeded random fp32 weights of the given sizes (tests and benchmarks)."""
    generator = torch.Generator().manual_seed(seed)
    state: dict[str, Tensor] = {}
    for key, shape in _expected_shapes(dims).items():
        if key.endswith(("ln_1.weight", "ln_2.weight", "ln_final.weight")):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:
            scale = {"token_embedding.weight": 0.3, "positional_embedding": 0.1}.get(key, dims.width**-0.5)
            state[key] = scale * torch.randn(shape, generator=generator)
    return state
