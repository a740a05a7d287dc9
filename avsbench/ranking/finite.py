"""Checks that what a ranking is computed from holds finite, sane numbers, each naming its true source.

A feature row with ``inf`` or ``3e38`` in it does not always give a NaN score (a normalized
embedding of a huge vector is finite), so it would rank silently, and differently per precision.
Feature rows are checked as they stream (one min/max reduction per chunk, well under 1% of the
encoding time on a CPU); the model's weights once when it is loaded; the topics' text inputs and
embeddings once per ranking. Each error names the file and the row, shot, topic or tensor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from avsbench.errors import InputFormatError

# Larger magnitudes are taken as corrupt: real features (CNN activations, CLIP embeddings) stay far
# below, and squares of 1e8 summed over thousands of dimensions still fit in float32.
FEATURE_MAGNITUDE_LIMIT = 1e8
EXPECTED_VALUES = f"finite values of magnitude at most {FEATURE_MAGNITUDE_LIMIT:g}"


def first_bad_value(
    values: torch.Tensor, limit: float = FEATURE_MAGNITUDE_LIMIT
) -> tuple[tuple[int, ...], float] | None:
    """Index and value of the first NaN, infinite or over-``limit`` entry of ``values``, or None.

    The common case costs one min/max reduction without a temporary (NaN propagates through it);
    only a bad tensor is searched."""
    if values.numel() == 0 or not values.is_floating_point():
        return None
    low, high = torch.aminmax(values)
    peak = float(torch.maximum(-low, high))
    if math.isfinite(peak) and peak <= limit:
        return None
    bad = (~torch.isfinite(values) | (values.abs() > limit)).nonzero()[0]
    index = tuple(int(i) for i in bad.tolist())
    return index, float(values[index])


def check_weights(model: nn.Module, weights_path: Path) -> None:
    """Raise naming ``weights_path`` and the tensor when a parameter or buffer of ``model`` is not finite."""
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        found = first_bad_value(tensor.detach(), limit=float("inf"))
        if found is not None:
            raise InputFormatError(
                f"the model's weights hold {found[1]} in tensor {name!r} at {list(found[0])}",
                path=weights_path,
                expected="finite weights (re-train or re-import the model)",
            )


def check_text_inputs(inputs: Mapping[str, torch.Tensor], sources: Mapping[str, Path], topics: Sequence[int]) -> None:
    """Raise naming the text feature file and the topic when a precomputed text feature is not sane.

    ``sources`` maps the input names that come from files to those files; ``topics`` numbers the rows."""
    for name, path in sources.items():
        found = first_bad_value(inputs[name])
        if found is not None:
            raise InputFormatError(
                f"text feature {name!r} holds {found[1]} for topic {topics[found[0][0]]}",
                path=path,
                expected=EXPECTED_VALUES,
            )


def check_text_embeddings(embeddings: torch.Tensor, topics: Sequence[int]) -> None:
    """Raise naming the model's text encoder when the text embeddings of sane inputs are not finite."""
    found = first_bad_value(embeddings, limit=float("inf"))
    if found is not None:
        raise InputFormatError(
            f"the model's text encoder gives {found[1]} for topic {topics[found[0][0]]} "
            "although its inputs and weights are finite",
            expected="a model whose text encoder gives finite embeddings (re-train or re-import it)",
        )
