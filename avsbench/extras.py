"""Optional dependencies, grouped as the install extras of ``pyproject.toml``.

Scoring, submission and comparison need only the core dependencies. Ranking, training, model
import and the demo need the ``model`` extra (torch, safetensors, ftfy, regex); those code paths
import it lazily, and :func:`require_extra` turns its absence into one clear line.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re

from avsbench.errors import MissingExtraError

# extra name -> top-level modules it provides
EXTRAS: dict[str, tuple[str, ...]] = {
    "model": ("torch", "safetensors", "ftfy", "regex"),
    "plot": ("matplotlib",),
}


# The oldest torch accepted: earlier releases' ``weights_only`` loader can be bypassed (CVE-2025-32434).
TORCH_FLOOR = (2, 6)


def release_tuple(version: str) -> tuple[int, ...]:
    """The leading release numbers of a version string (``"2.13.0+cpu"`` -> ``(2, 13, 0)``)."""
    match = re.match(r"\d+(?:\.\d+)*", version)
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def check_torch_floor(version: str) -> None:
    """Raise :class:`MissingExtraError` when torch ``version`` is older than :data:`TORCH_FLOOR`."""
    if release_tuple(version)[:2] < TORCH_FLOOR:
        floor = ".".join(map(str, TORCH_FLOOR))
        raise MissingExtraError(
            f"torch {version} is older than {floor} (its weights_only loader is affected by CVE-2025-32434): "
            f"pip install --upgrade 'avsbench[model]'"
        )


def extra_of_module(module_name: str | None) -> str | None:
    """The extra that provides ``module_name`` (``"torch.nn"`` -> ``"model"``), or None."""
    if not module_name:
        return None
    top = module_name.split(".")[0]
    for extra, modules in EXTRAS.items():
        if top in modules:
            return extra
    return None


def missing_extra_error(extra: str, module_name: str) -> MissingExtraError:
    """The one-line error for a missing ``module_name`` of ``extra``."""
    return MissingExtraError(f"this needs {module_name} (not installed): pip install 'avsbench[{extra}]'")


def require_extra(extra: str) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` can be imported.

    >>> require_extra("model")  # raises without torch: ... pip install 'avsbench[model]'
    """
    for module_name in EXTRAS[extra]:
        if importlib.util.find_spec(module_name) is None:
            raise missing_extra_error(extra, module_name)
    if extra == "model":
        try:
            check_torch_floor(importlib.metadata.version("torch"))
        except importlib.metadata.PackageNotFoundError:  # a source build without metadata: nothing to check
            pass
