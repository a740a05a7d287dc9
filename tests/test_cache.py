"""The embedding cache (issue 11 item 7): entries verified against a manifest written last, a
truncated or corrupted entry rebuilt with a warning, temporary folders of killed runs swept."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avsbench.data.atomic import _host
from avsbench.ranking.cache import CacheWarning, EmbeddingCache

SHOTS = [f"shot{i:05d}_1" for i in range(50)]
INPUTS = {"model": "m", "features": [], "shots": "s", "precision": "fp32"}


def write_entry(cache_dir: Path, values: np.ndarray) -> EmbeddingCache:
    cache = EmbeddingCache(cache_dir, INPUTS)
    assert not cache.complete
    with cache.writer(SHOTS, values.shape[1]) as writer:
        writer.append(values[:20])
        writer.append(values[20:])
    return cache


def test_entry_round_trip_leaves_only_the_entry(tmp_path: Path) -> None:
    values = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    cache = write_entry(tmp_path, values)
    again = EmbeddingCache(tmp_path, INPUTS)
    assert again.complete
    np.testing.assert_array_equal(again.open().read_rows(list(range(50))), values)
    assert [p.name for p in tmp_path.iterdir()] == [cache.key]


@pytest.mark.parametrize("damage", ["truncated", "flipped_byte", "manifest_missing", "old_format"])
def test_bad_entry_is_rebuilt_with_a_warning(tmp_path: Path, damage: str) -> None:
    values = np.ones((50, 8), dtype=np.float32)
    cache = write_entry(tmp_path, values)
    feature = cache.embeddings_path / "feature.bin"
    if damage == "truncated":
        feature.write_bytes(feature.read_bytes()[:-100])
    elif damage == "flipped_byte":
        data = bytearray(feature.read_bytes())
        data[777] ^= 0xFF
        feature.write_bytes(bytes(data))
    elif damage == "manifest_missing":
        (cache.path / "manifest.json").unlink()
    else:
        (cache.path / "manifest.json").write_text(json.dumps({"inputs": cache.inputs}))
    with pytest.warns(CacheWarning, match="not usable"):
        assert not EmbeddingCache(tmp_path, INPUTS).complete
    assert not cache.path.exists()
    write_entry(tmp_path, values * 2)
    np.testing.assert_array_equal(EmbeddingCache(tmp_path, INPUTS).open().read_rows([0]), values[:1] * 2)


def test_stale_temporaries_of_killed_runs_are_swept(tmp_path: Path) -> None:
    dead = tmp_path / f".0123abcd.new-999999999@{_host()}.xyz"
    (dead / "embeddings").mkdir(parents=True)
    (dead / "embeddings" / "feature.bin").write_bytes(b"\0" * 4096)
    EmbeddingCache(tmp_path, INPUTS)
    assert not dead.exists()


def test_a_failed_encoding_leaves_no_entry(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, INPUTS)
    with pytest.raises(RuntimeError), cache.writer(SHOTS, 8) as writer:
        writer.append(np.ones((10, 8), dtype=np.float32))
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == [] and not EmbeddingCache(tmp_path, INPUTS).complete
