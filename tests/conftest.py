"""Shared fixtures.

``small_demo_root``: a SMALL synthetic demo root generated once per test session (v3c1 with
3,000 shots, demotrain 500 videos, demoval 100 videos, the default features and the frame
feature), in the layout of docs/architecture.md ("The demo root"). Treat it as read-only.
"""

from __future__ import annotations

from pathlib import Path

import pytest

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
