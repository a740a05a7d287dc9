"""The ranking engine: streaming, alignment, exact tie order, exclusions, bf16 == int8 == fp32, cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avsbench.data.bigfile import BigFile
from avsbench.errors import InputFormatError, UnknownIdError
from avsbench.model.config import FeatureSpec, ModelConfig
from avsbench.model.laff import LaffModel
from avsbench.ranking import precision as policy
from avsbench.ranking.cache import EmbeddingCache
from avsbench.ranking.engine import _Encoder, rank_shots
from avsbench.ranking.precision import RankSettings, certified, error_sample_rows, int8_screening_model
from avsbench.ranking.stream import FeatureSource
from avsbench.ranking.topk import TopK, shot_id_keys

N_SHOTS = 700
DIMS = {"fa": 8, "fb": 16}


def tiny_model(seed: int = 0) -> LaffModel:
    torch.manual_seed(seed)
    config = ModelConfig(
        video_features=[FeatureSpec("fa", 8, "video", transform="tile", dropout=0.0), FeatureSpec("fb", 16, "video")],
        text_features=[FeatureSpec("tx", 12, "precomputed")],
        common_dim=32,
        heads=4,
    )
    model = LaffModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


@pytest.fixture(scope="module")
def collection(tmp_path_factory):
    """Shot list in V3C1 style; fa in shot-list order, fb shuffled (gather path); tied rows."""
    root = tmp_path_factory.mktemp("coll")
    rng = np.random.default_rng(1)
    shots = [f"shot{v:05d}_{s}" for v in range(1, 50) for s in range(1, 16)][:N_SHOTS]
    fa = rng.standard_normal((N_SHOTS, 8)).astype(np.float32)
    fb = rng.standard_normal((N_SHOTS, 16)).astype(np.float32)
    for dup in (3, 250, 511, 699):  # identical features -> identical scores: ties across chunks
        fa[dup], fb[dup] = fa[100], fb[100]
    perm = rng.permutation(N_SHOTS)
    extra = ["shot99999_1"]  # an id not in the shot list is fine
    BigFile.write(root / "fa", shots, fa)
    BigFile.write(root / "fb", [shots[i] for i in perm] + extra, np.vstack([fb[perm], rng.standard_normal((1, 16))]))
    return root, shots, {"fa": fa, "fb": fb}


def sources(root, shots):
    return [FeatureSource(name, BigFile(root / name), shots) for name in DIMS]


def brute_force(model, feats, shots, text, k, batch, excluded=()):
    enc = _Encoder(model, list(DIMS), text, batch, torch.device("cpu"))
    cols = []
    with torch.inference_mode():
        for a in range(0, len(shots), batch):
            x = [torch.from_numpy(feats[n][a : a + batch]) for n in DIMS]
            cols.append(enc.score(enc.embed(x)))
    scores = torch.cat(cols, dim=1).numpy()
    out = []
    for t in range(scores.shape[0]):
        ranked = sorted(
            (i for i in range(len(shots)) if i not in excluded),
            key=lambda i: (scores[t, i], shots[i].encode()),
            reverse=True,
        )[:k]
        out.append((ranked, scores[t, ranked]))
    return out


def text_embeddings(model, n=5, seed=3):
    g = torch.Generator().manual_seed(seed)
    with torch.inference_mode():
        return model.encode_texts({"tx": torch.randn(n, 12, generator=g)})


def test_fp32_stream_equals_brute_force_with_exact_ties(collection):
    root, shots, feats = collection
    model = tiny_model()
    text = text_embeddings(model)
    settings = RankSettings(top_k=40, precision="fp32", device="cpu", batch_size=32, chunk_rows=96)
    out = rank_shots(model, sources(root, shots), shots, text, settings)
    expected = brute_force(model, feats, shots, text, 40, 32)
    assert out.shots == N_SHOTS and out.precision == "fp32" and out.chunk_rows == 96
    for got, (rows, scores) in zip(out.rankings, expected):
        assert got.rows.tolist() == rows
        assert np.array_equal(got.scores, scores)
    # with k = all shots the tied group (100, 3, 250, 511, 699) appears in shot-id-descending order
    full = rank_shots(
        model,
        sources(root, shots),
        shots,
        text,
        RankSettings(top_k=N_SHOTS, precision="fp32", device="cpu", batch_size=32, chunk_rows=64),
    )
    tied = [r for r in full.rankings[0].rows.tolist() if r in (3, 100, 250, 511, 699)]
    assert [shots[r] for r in tied] == sorted((shots[r] for r in tied), key=str.encode, reverse=True)
    positions = [full.rankings[0].rows.tolist().index(r) for r in tied]
    assert positions == list(range(positions[0], positions[0] + 5))  # adjacent: truly tied


def test_excluded_shots_never_returned(collection):
    root, shots, feats = collection
    model = tiny_model()
    text = text_embeddings(model, n=2)
    best = rank_shots(
        model, sources(root, shots), shots, text, RankSettings(top_k=5, precision="fp32", device="cpu", batch_size=32)
    ).rankings
    excluded = {int(best[0].rows[0]), int(best[1].rows[1]), 5}
    out = rank_shots(
        model,
        sources(root, shots),
        shots,
        text,
        RankSettings(top_k=N_SHOTS, precision="fp32", device="cpu", batch_size=32),
        excluded=sorted(excluded),
    )
    assert out.shots == N_SHOTS - 3
    for r in out.rankings:
        assert len(r.rows) == N_SHOTS - 3 and not excluded & set(r.rows.tolist())


def screened_and_fp32(collection, precision, top_k, margin):
    """The same tiny ranking in fp32 and in a screening precision; asserts they are identical."""
    root, shots, _ = collection
    model = tiny_model(seed=5)
    text = text_embeddings(model, n=6, seed=8)
    fp32 = rank_shots(
        model,
        sources(root, shots),
        shots,
        text,
        RankSettings(top_k=top_k, precision="fp32", device="cpu", batch_size=64),
    )
    out = rank_shots(
        model,
        sources(root, shots),
        shots,
        text,
        RankSettings(top_k=top_k, precision=precision, device="cpu", batch_size=64, rescore_margin=margin),
    )
    for a, b in zip(fp32.rankings, out.rankings, strict=True):
        assert a.rows.tolist() == b.rows.tolist()
        assert np.array_equal(a.scores, b.scores)
    return model, text, out


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_screening_rescored_equals_fp32(collection, precision):
    _, _, out = screened_and_fp32(collection, precision, top_k=30, margin=60)
    assert out.precision == precision and out.candidates_per_topic == 90
    assert 0 < out.max_screen_error < 0.05
    assert out.rescored_shots >= 30
    assert out.uncertified_topics == []


@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_screening_too_small_margin_falls_back_to_fp32(collection, precision):
    _, _, out = screened_and_fp32(collection, precision, top_k=30, margin=0)
    assert (
        out.uncertified_topics
    )  # zero margin cannot be certified: those topics were ranked again in fp32 (and equal it)


def test_int8_rescores_only_a_prefix_of_a_large_margin(collection):
    """With 500 spare candidates per topic only the prefix the certificate needs is re-scored."""
    _, _, out = screened_and_fp32(collection, "int8", top_k=30, margin=500)
    assert out.candidates_per_topic == 530 and out.uncertified_topics == []
    assert 30 <= out.rescored_shots < N_SHOTS / 2  # the union of all candidates is nearly every shot


def test_screening_error_includes_an_even_sample_of_shots(collection):
    """The error behind the certificate covers shots spread over the collection, not only the top."""
    _, _, feats = collection
    model, text, out = screened_and_fp32(collection, "int8", top_k=10, margin=10)
    fp32, int8 = (_Encoder(m, list(DIMS), text, 64, torch.device("cpu")) for m in (model, int8_screening_model(model)))
    with torch.inference_mode():  # the pass's own batches (64 rows from row 0), so the same int8 scores
        batches = [[torch.from_numpy(feats[n][a : a + 64]) for n in DIMS] for a in range(0, N_SHOTS, 64)]
        err = np.abs(torch.cat([fp32.score(fp32.embed(x)) - int8.score(int8.embed(x)) for x in batches], dim=1).numpy())
    sample = error_sample_rows(N_SHOTS, np.empty(0, np.int64))
    assert sample.size == N_SHOTS // 16 and sample[0] == 0 and sample[-1] == N_SHOTS - 1
    assert err[:, sample].max() <= out.max_screen_error <= err.max()
    assert out.rescored_shots >= sample.size


def test_certificate_cases():
    exact = np.array([0.9, 0.8, 0.7, 0.6])  # fp32 scores of the re-scored prefix (k = 3: k-th = 0.7)
    approx = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], dtype=np.float32)  # held candidates, best first
    assert certified(exact, approx, held=6, capacity=6, top_k=3, err=0.05)  # first left out 0.5 + 0.1 < 0.7
    assert not certified(exact, approx, held=6, capacity=6, top_k=3, err=0.1)  # 0.5 + 0.2 is not < 0.7
    assert certified(exact, approx[:4], held=4, capacity=6, top_k=3, err=1.0)  # a heap not full saw every shot
    assert not certified(
        exact, approx[:4], held=4, capacity=4, top_k=3, err=0.06
    )  # full heap: others <= 0.6, 0.72 > 0.7
    assert certified(exact, approx[:4], held=4, capacity=4, top_k=3, err=0.04)
    assert not certified(exact[:2], approx, held=6, capacity=6, top_k=3, err=0.0)  # fewer than k re-scored


def test_precision_choice(monkeypatch):
    from avsbench.errors import ConfigError

    cpu = torch.device("cpu")
    monkeypatch.setattr(policy, "cpu_has_fast_bf16", lambda: False)
    assert policy.resolve_precision("auto", cpu) == "int8"
    assert policy.resolve_precision("auto", cpu, shots=1_000_000, candidates=30_000) == "int8"
    assert policy.resolve_precision("auto", cpu, shots=5_000, candidates=30_000) == "fp32"  # re-scoring would cost more
    assert policy.resolve_precision("int8", cpu, shots=5_000, candidates=30_000) == "int8"  # asked for: done
    monkeypatch.setattr(policy, "cpu_has_int8_kernels", lambda: False)
    assert policy.resolve_precision("auto", cpu) == "fp32"
    monkeypatch.setattr(policy, "cpu_has_fast_bf16", lambda: True)
    assert policy.resolve_precision("auto", cpu) == "bf16"
    with pytest.raises(ConfigError, match="CPU only"):
        policy.resolve_precision("int8", torch.device("cuda"))
    with pytest.raises(ConfigError, match="no quantized engine"):
        policy.resolve_precision("int8", cpu)  # cpu_has_int8_kernels is patched to False above
    with pytest.raises(ConfigError, match="unknown precision"):
        policy.resolve_precision("fp16", cpu)


def test_plan_ranking_resolves_every_choice_once(monkeypatch):
    monkeypatch.setattr(policy, "cpu_has_fast_bf16", lambda: False)
    monkeypatch.setattr(policy, "cpu_has_int8_kernels", lambda: True)
    plan = policy.plan_ranking(
        RankSettings(top_k=100, device="cpu", batch_size=64, chunk_rows=1000), shots=100_000, topics=20
    )
    assert (plan.device.type, plan.precision, plan.screening) == ("cpu", "int8", True)
    assert (plan.batch, plan.chunk_rows, plan.candidates, plan.io_threads) == (
        64,
        960,
        200,
        1,
    )  # chunk: whole batches; margin = top-k
    exact = plan.exact()
    assert (exact.precision, exact.screening, exact.candidates, exact.batch) == ("fp32", False, 100, 64)
    small = policy.plan_ranking(
        RankSettings(top_k=100, device="cpu"), shots=1_000, topics=20
    )  # re-scoring would cost more
    assert (small.precision, small.candidates, small.batch, small.chunk_rows) == ("fp32", 100, 1024, 1024)
    with pytest.raises(policy.ConfigError, match="top-k"):
        policy.plan_ranking(RankSettings(top_k=0, device="cpu", precision="fp32"))


def test_int8_screening_model_quantizes_linear_layers_only_in_a_copy():
    model = tiny_model()
    screen = int8_screening_model(model)
    assert isinstance(model.video_transforms[1].linear, torch.nn.Linear)
    assert type(screen.video_transforms[1].linear) is not torch.nn.Linear
    x = {"fa": torch.randn(64, 8), "fb": torch.randn(64, 16)}
    with torch.inference_mode():
        a, b = model.encode_videos(x), screen.encode_videos(x)
    assert 0 < float((a - b).abs().max()) < 0.05


def test_cache_round_trip(collection, tmp_path):
    root, shots, _ = collection
    model = tiny_model()
    text = text_embeddings(model)
    settings = RankSettings(top_k=25, precision="fp32", device="cpu", batch_size=32, chunk_rows=64)
    cache = EmbeddingCache(tmp_path, {"model": "m", "features": ["fa", "fb"]})
    assert not cache.complete
    with cache.writer(shots, 32) as writer:
        first = rank_shots(model, sources(root, shots), shots, text, settings, cache_writer=writer.append)
    assert cache.complete
    assert not EmbeddingCache(tmp_path, {"model": "other", "features": ["fa", "fb"]}).complete
    cached = FeatureSource("embeddings", cache.open(), shots)
    again = rank_shots(model, sources(root, shots), shots, text_embeddings(model), settings, cache_source=cached)
    assert again.from_cache
    for a, b in zip(first.rankings, again.rankings):
        assert a.rows.tolist() == b.rows.tolist() and np.array_equal(a.scores, b.scores)


def test_bad_inputs(collection, tmp_path):
    root, shots, feats = collection
    with pytest.raises(UnknownIdError, match="not in this BigFile"):
        FeatureSource("fa", BigFile(root / "fa"), shots + ["shot00001_99"])
    bad = feats["fa"].copy()
    bad[77, 0] = np.nan
    BigFile.write(tmp_path / "fa", shots, bad)
    srcs = [FeatureSource("fa", BigFile(tmp_path / "fa"), shots), FeatureSource("fb", BigFile(root / "fb"), shots)]
    model = tiny_model()
    with pytest.raises(InputFormatError, match=shots[77]):
        rank_shots(
            model,
            srcs,
            shots,
            text_embeddings(model),
            RankSettings(top_k=5, precision="fp32", device="cpu", batch_size=32),
        )


@pytest.mark.parametrize("value", [np.inf, np.nan, 3e38, -1e20])
@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_insane_feature_value_is_named_with_its_file_row_and_shot(collection, tmp_path, value, precision):
    """inf, NaN or a huge value in one row never ranks silently and is blamed on the right file,
    file row and shot in every precision (issue 11, item 6); fb's rows are shuffled against the shot list."""
    root, shots, _ = collection
    fb = BigFile(root / "fb")
    file_row = fb.ids.index(shots[333])
    matrix = fb.read(fb.ids)
    matrix[file_row, 5] = value
    BigFile.write(tmp_path / "fb", fb.ids, matrix)
    srcs = [FeatureSource("fa", BigFile(root / "fa"), shots), FeatureSource("fb", BigFile(tmp_path / "fb"), shots)]
    model = tiny_model()
    settings = RankSettings(top_k=10, precision=precision, device="cpu", batch_size=64)
    with pytest.raises(InputFormatError) as caught:
        rank_shots(model, srcs, shots, text_embeddings(model), settings)
    message = str(caught.value)
    assert message.startswith(str(tmp_path / "fb" / "feature.bin") + ": feature value ")
    assert f"in row {file_row} (shot {shots[333]}, line {file_row + 1} of id.txt)" in message


def test_rescored_rows_are_checked_too(collection, tmp_path):
    """Rows read again for the fp32 re-scoring are checked as well (a file changed after the pass)."""
    from avsbench.ranking.engine import check_feature_rows

    root, shots, _ = collection
    srcs = sources(root, shots)
    buffers = [torch.zeros(3, 8), torch.zeros(3, 16)]
    check_feature_rows(srcs, buffers, np.array([5, 9, 600]), shots)
    buffers[1][2, 0] = -torch.inf
    file_row = BigFile(root / "fb").ids.index(shots[600])
    with pytest.raises(
        InputFormatError, match=rf"fb/feature.bin: feature value -inf in row {file_row} \(shot {shots[600]}"
    ):
        check_feature_rows(srcs, buffers, np.array([5, 9, 600]), shots)


def test_nan_text_embedding_is_not_blamed_on_features(collection):
    root, shots, _ = collection
    model = tiny_model()
    text = text_embeddings(model).clone()
    text[2, 1, 0] = torch.nan
    with pytest.raises(InputFormatError, match="text embedding row 2 holds nan") as caught:
        rank_shots(
            model,
            sources(root, shots),
            shots,
            text,
            RankSettings(top_k=5, precision="fp32", device="cpu", batch_size=32),
        )
    assert "feature.bin" not in str(caught.value) and str(root) not in str(caught.value)


def test_topk_boundary_ties_across_pushes():
    ids = [f"shot{i:05d}_1" for i in range(10)]
    top = TopK(1, 3, shot_id_keys(ids))
    top.push_chunk(torch.tensor([[0.5, 0.9, 0.5, 0.5, 0.1]]), 0)
    assert top.rows[0].tolist() == [1, 3, 2]
    top.push_chunk(torch.tensor([[0.5, 0.5, -torch.inf, 0.2, 0.5]]), 5)  # 0.5-ties with larger ids enter
    assert top.rows[0].tolist() == [1, 9, 6]


def test_frame_level_feature_laff_ml(tmp_path):
    """A LAFF-ml model (one frame-level + one video-level feature): streaming equals encoding
    everything at once, shots with more than max_frames frames are truncated, bf16 == int8 == fp32."""
    from avsbench.data.frames import FrameFeature
    from avsbench.ranking.stream import FrameSource

    rng = np.random.default_rng(4)
    shots = [f"shot{v:05d}_{s}" for v in range(1, 11) for s in range(1, 31)]
    counts = rng.integers(1, 9, size=len(shots))
    frame_ids = [f"{shot}_{f}" for shot, c in zip(shots, counts) for f in range(1, c + 1)]
    order = rng.permutation(len(frame_ids))
    frame_matrix = rng.standard_normal((len(frame_ids), 8)).astype(np.float32)
    BigFile.write(tmp_path / "frames", [frame_ids[i] for i in order], frame_matrix[order])
    BigFile.write(tmp_path / "fb", shots, rng.standard_normal((len(shots), 16)).astype(np.float32))
    torch.manual_seed(2)
    config = ModelConfig(
        video_features=[FeatureSpec("fr", 8, "frame"), FeatureSpec("fb", 16, "video")],
        text_features=[FeatureSpec("tx", 12, "precomputed")],
        common_dim=32,
        heads=4,
        max_frames=5,
    )
    model = LaffModel(config).eval()
    frames = FrameFeature(tmp_path / "frames", max_frame=5)

    def srcs():
        return [FrameSource("fr", frames, shots, 5), FeatureSource("fb", BigFile(tmp_path / "fb"), shots)]

    text = text_embeddings(model, n=3)
    settings = RankSettings(top_k=len(shots), precision="fp32", device="cpu", batch_size=16, chunk_rows=48)
    out = rank_shots(model, srcs(), shots, text, settings)
    x, mask = frames.read(shots)
    with torch.inference_mode():
        emb = model.encode_videos(
            {
                "fr": torch.from_numpy(x),
                "fr.mask": torch.from_numpy(mask),
                "fb": torch.from_numpy(BigFile(tmp_path / "fb").read(shots)),
            }
        )
        expected = model.similarity(text, emb).numpy()
    assert x.shape[1] == 5  # truncated to max_frames
    for t, ranking in enumerate(out.rankings):
        np.testing.assert_allclose(ranking.scores, expected[t, ranking.rows], rtol=0, atol=1e-6)
        assert np.all(np.diff(expected[t, ranking.rows]) <= 1e-6)
    for precision in ("bf16", "int8"):
        screened = rank_shots(
            model,
            srcs(),
            shots,
            text,
            RankSettings(top_k=20, precision=precision, device="cpu", batch_size=16, chunk_rows=48),
        )
        assert screened.precision == precision
        for a, b in zip(out.rankings, screened.rankings):
            assert a.rows[:20].tolist() == b.rows.tolist() and np.array_equal(a.scores[:20], b.scores)
    with pytest.raises(UnknownIdError, match="no frames"):
        FrameSource("fr", frames, shots + ["shot00099_1"], 5)
    # a huge value in the second frame of one shot is named with the frame file's row (issue 11, item 6)
    shot = next(i for i in range(100, len(shots)) if counts[i] >= 2)
    file_row = [frame_ids[i] for i in order].index(f"{shots[shot]}_2")
    bad = frame_matrix[order].copy()
    bad[file_row, 3] = 3e38
    BigFile.write(tmp_path / "frames", [frame_ids[i] for i in order], bad)
    frames = FrameFeature(tmp_path / "frames", max_frame=5)
    with pytest.raises(InputFormatError) as caught:
        rank_shots(model, srcs(), shots, text, settings)
    assert str(tmp_path / "frames" / "feature.bin") in str(caught.value)
    assert f"3e+38 in row {file_row} (shot {shots[shot]}, line {file_row + 1} of id.txt)" in str(caught.value)


def test_strictly_decreasing_score_column():
    from avsbench.data.runs import strictly_decreasing_scores

    scores = np.array([0.5, 0.25, 0.25, 0.25, 1e-12, -0.1, -0.1], dtype=np.float32)
    text = strictly_decreasing_scores(scores)
    assert text == [
        "0.5000000000",
        "0.2500000000",
        "0.2499999999",
        "0.2499999998",
        "0.0000000000",
        "-0.1000000015",
        "-0.1000000016",
    ]
    values = [float(t) for t in text]
    assert all(a > b for a, b in zip(values, values[1:]))


def test_cache_key_follows_the_inputs(tmp_path):
    import os

    from avsbench.ranking.cache import feature_fingerprint

    rng = np.random.default_rng(0)
    bf = BigFile.write(
        tmp_path / "f", [f"s{i}" for i in range(5000)], rng.standard_normal((5000, 16)).astype(np.float32)
    )
    first = feature_fingerprint("f", bf)
    assert first == feature_fingerprint("f", BigFile(tmp_path / "f"))
    st = bf.feature_path.stat()
    os.utime(bf.feature_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    touched = feature_fingerprint("f", BigFile(tmp_path / "f"))
    assert touched["mtime_ns"] != first["mtime_ns"] and touched["sampled_sha256"] == first["sampled_sha256"]
    with open(bf.feature_path, "r+b") as fh:  # the last sampled block ends at the file's end
        fh.seek(-4, 2)
        fh.write(b"\x00\x00\x80\x7f")
    os.utime(bf.feature_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert feature_fingerprint("f", BigFile(tmp_path / "f"))["sampled_sha256"] != first["sampled_sha256"]
    keys = {EmbeddingCache(tmp_path, {"features": [f]}).key for f in (first, touched)}
    assert len(keys) == 2


def test_select_years():
    from avsbench.data.topics import get_year
    from avsbench.errors import ConfigError
    from avsbench.ranking.pipeline import select_years

    y19, y18, prog = get_year(2019), get_year(2018), get_year("progress")
    assert select_years([y19], ["main"]) == [y19]
    assert select_years([y19], ["main", "progress"]) == [y19, prog]
    assert select_years([y19, y18], ["progress"]) == [prog]
    with pytest.raises(ConfigError):
        select_years([y18], ["progress"])
    with pytest.raises(ConfigError):
        select_years([y19], ["extra"])


def test_first_bad_value_finds_nan_inf_and_huge_values():
    from avsbench.ranking.finite import first_bad_value

    x = torch.zeros(4, 3)
    assert first_bad_value(x) is None and first_bad_value(torch.zeros(0, 3)) is None
    assert first_bad_value(torch.ones(2, 2, dtype=torch.bool)) is None
    for value, limit in ((torch.inf, float("inf")), (-torch.inf, 1e8), (torch.nan, float("inf")), (-2e8, 1e8)):
        y = x.clone()
        y[2, 1] = value
        index, found = first_bad_value(y, limit=limit)
        assert index == (2, 1) and (found == value or (np.isnan(found) and np.isnan(value)))
    assert first_bad_value(torch.full((2, 2), 5e7)) is None
