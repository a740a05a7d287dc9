"""Model folders: saving leaves the caller's objects alone, folders are written as a unit and checked on load."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from avsbench.model.checkpoint import load_model, save_model
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel


def small_config() -> ModelConfig:
    return ModelConfig(
        video_features=[FeatureSpec("vid_a", 12, "video"), FeatureSpec("vid_b", 8, "video")],
        text_features=[FeatureSpec("bow", 5, "bow"), FeatureSpec("clip", 16, "precomputed")],
        common_dim=16,
        heads=2,
    )


def small_model(seed: int = 0) -> LaffModel:
    torch.manual_seed(seed)
    return LaffModel(small_config()).eval()


VOCAB = ["apple", "ball", "cat", "dog", "egg"]


def test_save_model_leaves_the_callers_config_unchanged(tmp_path: Path) -> None:
    model = small_model()
    before = copy.deepcopy(model.config)
    save_model(tmp_path / "m", model, bow_vocab=VOCAB)
    assert model.config == before and model.config.bow_vocab_file is None
    loaded = load_model(tmp_path / "m")
    assert loaded.config.bow_vocab_file == "bow_vocab.txt" and loaded.text_pipeline.bow_vocab == VOCAB


def write_config(folder: Path, **changes) -> None:
    import json

    data = json.loads((folder / "config.json").read_text())
    data.update(changes)
    (folder / "config.json").write_text(json.dumps(data))
    (folder / "manifest.json").unlink(missing_ok=True)  # a hand-edited folder: no manifest to tie it


def test_folder_is_written_as_a_unit_with_a_manifest_and_keeps_user_files(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    save_model(folder, small_model(0), bow_vocab=VOCAB)
    (folder / "NOTES.txt").write_text("mine")
    save_model(folder, small_model(1), bow_vocab=VOCAB[::-1])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging or old copy left
    names = ["NOTES.txt", "bow_vocab.txt", "config.json", "manifest.json", "weights.safetensors"]
    assert sorted(p.name for p in folder.iterdir()) == names
    assert load_model(folder).text_pipeline.bow_vocab == VOCAB[::-1] and (folder / "NOTES.txt").read_text() == "mine"


@pytest.mark.parametrize("exchange", [True, False])
def test_new_weights_beside_an_old_config_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool
) -> None:
    from avsbench.errors import InputFormatError

    if not exchange:
        monkeypatch.setenv("AVSBENCH_NO_RENAME_EXCHANGE", "1")
    save_model(tmp_path / "old", small_model(0), bow_vocab=VOCAB)
    save_model(tmp_path / "new", small_model(1), bow_vocab=VOCAB)
    save_model(tmp_path / "old", small_model(2), bow_vocab=VOCAB)  # replaces a folder (exchange or two renames)
    mixed = tmp_path / "old"
    (mixed / "weights.safetensors").write_bytes((tmp_path / "new" / "weights.safetensors").read_bytes())
    with pytest.raises(InputFormatError, match="weights.safetensors: file does not match the manifest"):
        load_model(mixed)


def test_a_swap_cut_between_its_two_renames_is_recovered_on_next_read(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    save_model(folder, small_model(0), bow_vocab=VOCAB)
    expected = load_model(folder).model.state_dict()
    folder.rename(tmp_path / ".m.old")  # the fallback's first rename happened, the second not
    from avsbench.data.atomic import _host

    (tmp_path / f".m.new-999999999@{_host()}.x").mkdir()  # a dead writer's staging folder
    loaded = load_model(folder)
    assert all(torch.equal(loaded.model.state_dict()[k], v) for k, v in expected.items())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


def test_config_types_are_checked_before_anything_is_built(tmp_path: Path) -> None:
    from avsbench.errors import InputFormatError

    save_model(tmp_path / "m", small_model(), bow_vocab=VOCAB)
    cases = [
        ({"heads": "4"}, "config.heads is str"),
        ({"common_dim": 512.0}, "config.common_dim is float"),
        ({"fusion": None}, "config.fusion is null"),
        ({"common_dim": 262144}, "a number from 1 to 65536"),
        ({"video_features": [{"name": "vid_a", "dim": 12.0, "kind": "video"}]}, "video_features[0].dim is float"),
        ({"video_features": [{"name": "vid_a", "kind": "video"}]}, "missing key(s) ['dim']"),
        ({"colour": 1}, "unknown key(s) ['colour']"),
    ]
    for change, message in cases:
        folder = tmp_path / f"case{cases.index((change, message))}"
        folder.mkdir()
        for name in ("weights.safetensors", "bow_vocab.txt", "config.json", "manifest.json"):
            (folder / name).write_bytes((tmp_path / "m" / name).read_bytes())
        write_config(folder, **change)
        with pytest.raises(InputFormatError) as info:
            load_model(folder)
        assert message in str(info.value) and "config.json" in str(info.value), str(info.value)


def test_weight_shapes_are_compared_from_the_header_before_allocating(tmp_path: Path) -> None:
    import resource

    from avsbench.errors import InputFormatError

    folder = tmp_path / "m"
    save_model(folder, small_model())
    write_config(folder, common_dim=65536, heads=2)  # would need 65536 x (12 + 8 + 5 + 16) floats and more
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(
        InputFormatError, match=r"weights do not match config.json: video_transforms.0.linear.weight is \(16, 12\)"
    ):
        load_model(folder)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB


def test_paths_from_the_config_stay_inside_the_model_folder(tmp_path: Path) -> None:
    from avsbench.errors import InputFormatError

    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n")
    save_model(tmp_path / "m", small_model(), bow_vocab=VOCAB)
    for name in (str(secret), "../secret.txt", "sub/../../secret.txt"):
        write_config(tmp_path / "m", bow_vocab_file=name)
        with pytest.raises(InputFormatError, match="is not a plain name") as info:
            load_model(tmp_path / "m")
        assert "root:x" not in str(info.value)
    (tmp_path / "m" / "link.txt").symlink_to(secret)
    write_config(tmp_path / "m", bow_vocab_file="link.txt")
    with pytest.raises(InputFormatError, match="outside the model folder"):
        load_model(tmp_path / "m")
    write_config(
        tmp_path / "m",
        bow_vocab_file="bow_vocab.txt",
        video_features=[{"name": "../../etc", "dim": 12, "kind": "video"}],
    )
    with pytest.raises(InputFormatError, match="video feature name '../../etc' is not a plain name"):
        load_model(tmp_path / "m")


def test_vocabulary_errors_never_echo_the_file(tmp_path: Path) -> None:
    from avsbench.errors import InputFormatError

    save_model(tmp_path / "m", small_model(), bow_vocab=VOCAB)
    vocab = tmp_path / "m" / "bow_vocab.txt"
    vocab.write_text("apple\nroot:x:0:0 root:/root:/bin/bash\ncat\ndog\negg\n")
    (tmp_path / "m" / "manifest.json").unlink()
    with pytest.raises(InputFormatError, match=r"bow_vocab.txt:2: bad vocabulary entry") as info:
        load_model(tmp_path / "m")
    assert "root" not in str(info.value).replace(str(tmp_path), "")
    vocab.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(InputFormatError, match="not UTF-8 text"):
        load_model(tmp_path / "m")
