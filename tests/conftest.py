"""Shared fixtures, and the modes in which ``.ci/run`` tests the installed wheel.

``AVSBENCH_TEST_INSTALLED=1``: the tests run from a copy outside the source tree against the
installed package; the session fails at once if ``avsbench`` is imported from anywhere but
site-packages. ``AVSBENCH_TEST_NO_TORCH=1``: torch must not be installed; test modules that
import torch, the model or ranking layers (or use the synthetic demo root) are not collected,
and tests marked ``needs_torch`` are skipped.

``small_demo_root``: a SMALL synthetic demo root generated once per test session (v3c1 with
3,000 shots, demotrain 500 videos, demoval 100 videos, the default features and the frame
feature), in the layout of docs/architecture.md ("The demo root"). Treat it as read-only.
"""

from __future__ import annotations

import os
import re
from importlib.util import find_spec
from pathlib import Path

import pytest

INSTALLED = os.environ.get("AVSBENCH_TEST_INSTALLED") == "1"
NO_TORCH = os.environ.get("AVSBENCH_TEST_NO_TORCH") == "1"
NEEDS_TORCH = re.compile(
    r"^\s*(import torch|from torch|(from|import) avsbench\.(model|ranking|demo_pipeline|data\.synthetic))"
    r"|small_demo_root",
    re.MULTILINE,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: longer tests (still run in CI)")
    config.addinivalue_line("markers", "needs_torch: needs the [model] extra (skipped with AVSBENCH_TEST_NO_TORCH=1)")
    config.addinivalue_line("markers", "needs_plot: needs matplotlib (the [plot] extra; skipped where it is absent)")
    if INSTALLED:
        import avsbench

        location = Path(avsbench.__file__).resolve()
        if "site-packages" not in location.parts:
            raise pytest.UsageError(f"AVSBENCH_TEST_INSTALLED=1 but avsbench is imported from {location}")
    if NO_TORCH and find_spec("torch") is not None:
        raise pytest.UsageError("AVSBENCH_TEST_NO_TORCH=1 but torch is installed")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    # None (not False) lets pytest's own rules (--ignore, ...) decide the rest
    if NO_TORCH and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return True if NEEDS_TORCH.search(collection_path.read_text(encoding="utf-8")) else None
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_torch = pytest.mark.skip(reason="needs torch (AVSBENCH_TEST_NO_TORCH=1)")
    skip_plot = pytest.mark.skip(reason="needs matplotlib (not installed)")
    has_matplotlib = find_spec("matplotlib") is not None
    for item in items:
        if NO_TORCH and "needs_torch" in item.keywords:
            item.add_marker(skip_torch)
        if not has_matplotlib and "needs_plot" in item.keywords:
            item.add_marker(skip_plot)


SMALL_DEMO_PARAMS = {"n_shots": 3000, "n_train_videos": 500, "n_val_videos": 100, "seed": 7}


@pytest.fixture(scope="session")
def small_demo_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Root folder of a small generated demo (v3c1, demotrain, demoval, word2vec/demo500)."""
    from avsbench.data.synthetic import generate_demo

    root = tmp_path_factory.mktemp("small_demo")
    generate_demo(root, **SMALL_DEMO_PARAMS)
    return root


def _private_cache_folder() -> None:
    """Tests never write into the user's cache: the parsed-qrels cache goes to a temporary folder."""
    import atexit
    import os
    import shutil
    import tempfile

    if "AVSBENCH_CACHE" not in os.environ:
        folder = tempfile.mkdtemp(prefix="avsbench-test-cache-")
        os.environ["AVSBENCH_CACHE"] = folder
        atexit.register(shutil.rmtree, folder, True)


_private_cache_folder()
