"""The data root: where collections live, like the field's other tools (``~/VisualSearch``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

ROOT_ENV = "AVSBENCH_ROOT"
DEFAULT_ROOT = "~/VisualSearch"
CACHE_ENV = "AVSBENCH_CACHE"
SYNTHETIC_MARKER = "SYNTHETIC.md"  # file marking a generated (demo) collection folder


def resolve_root(rootpath: str | Path | None = None) -> Path:
    """Return the data root: ``rootpath`` if given, else ``$AVSBENCH_ROOT``, else ``~/VisualSearch``."""
    from pathlib import Path

    if rootpath is None or str(rootpath) == "":
        rootpath = os.environ.get(ROOT_ENV) or DEFAULT_ROOT
    return Path(os.path.expanduser(str(rootpath)))


def cache_dir() -> Path:
    """Return avsbench's cache folder (``$AVSBENCH_CACHE``, else ``$XDG_CACHE_HOME/avsbench``)."""
    from pathlib import Path

    return Path(cache_dir_name())


def cache_dir_name() -> str:
    """:func:`cache_dir` as a plain string (for the scorer, which does not import pathlib)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return os.path.expanduser(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "avsbench")


def demo_root() -> Path:
    """Return the default root of the generated (synthetic) demo collections."""
    return cache_dir() / "demo"
