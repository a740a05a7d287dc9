"""The synthetic demo collections: generated deterministically from a seed, in the real formats.

A latent-concept model is derived from the words of the REAL AVS topics (every year). Each
concept has a code in a latent space; a shot is a set of concepts with saliences. Topics are
planted into shots (so each topic has tens to a few hundred relevant shots) together with
near misses (all topic concepts but one). A shot is relevant to a topic when it shows every
content word of the topic. Video features are linear images of the shot's latent vector plus
noise, with known quality:

* ``demo_clip512``: every concept, little noise; the 512-d "CLIP-like" text feature of captions
  and topics lives in the same space, so it is aligned with this video feature;
* ``demo_partial768``: sees only about half of the concepts;
* ``demo_noisy1024``: every concept, but with distorted concept codes and strong noise.

The training collections (``demotrain``, ``demoval``) use the same concept space and the same
feature generators, and carry captions with varied wording generated from their concepts, so a
model trained on them generalises to the test topics. Qrels are made like NIST's: the top of
several simple runs is pooled, split into strata by best rank, and each stratum is sampled at
its own rate (unsampled shots get -1).

Everything written is labelled synthetic (``SYNTHETIC.md`` next to it, ``manifest.json``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypedDict, Unpack

import numpy as np

from avsbench.data.atomic import atomic_write, atomic_write_text
from avsbench.data.bigfile import BigFile, BigFileWriter, replace_dir
from avsbench.data.captions import tokenize, write_captions
from avsbench.data.collection import SYNTHETIC_MARKER
from avsbench.data.resources import bundled_topic_file, v3c1_dropped_shots
from avsbench.data.root import demo_root
from avsbench.data.topics import IACC3, V3C1, YEARS, Topic, Year, parse_years
from avsbench.errors import ConfigError
from avsbench.ranking.topk import TopK, shot_id_keys

GENERATOR_VERSION = 1
DEFAULT_SEED = 2021
DEFAULT_SHOTS = 30_000
DEFAULT_TRAIN_VIDEOS = 6_000
DEFAULT_VAL_VIDEOS = 1_000
DEFAULT_FEATURE_DIMS = (512, 768, 1024)
TRAIN_COLLECTION = "demotrain"
VAL_COLLECTION = "demoval"
WORD2VEC_NAME = "demo500"
WORD2VEC_DIM = 500
LATENT_DIM = 128
WEAK_GAIN = 0.35
NOISE_BANK_ROWS = 2048
CHUNK_ROWS = 16_384
# Targets of relevant shots per topic in a collection of DEFAULT_SHOTS shots (log-uniform in between);
# they grow with the square root of the collection size (V3C1-sized: about 150 to 1,800, as on V3C1).
RELEVANT_RANGE = (25, 300)
# NIST-style pooling: best rank over the pooled runs (upper bound of each stratum) and sampling rate.
STRATA = ((40, 1.0), (120, 0.5), (400, 0.2))
COLLECTION_CODES = {V3C1: 1, IACC3: 2, TRAIN_COLLECTION: 3, VAL_COLLECTION: 4}

STOPWORDS = frozenset(
    """a an the of or and in on at to is are be being by with without from into onto over under
    while where who which that this than as it its his her their themselves him them one two more
    less least exactly any each some other another both such kind type something someone s w not
    out up down through towards together still simultaneously including during across near beside
    behind front top view views visible scene scenes background doing""".split()
)
# Scene words that never occur in a topic: the background of shots.
FILLER_WORDS = tuple(
    """lamp cloud grass hill river mountain road sign fence bench flower leaf rock sand wave window
    frame shelf desk pillow carpet lamp post bottle cap poster wall traffic light pole wire roof
    chimney garden lawn bush path forest lake valley desert cliff coast harbor bus taxi van
    tractor bird insect cow sheep goat chicken pig tray plate bowl spoon fork clock vase
    painting frame statue fountain base tower bridge rail tunnel escalator corridor""".split()
)
SYNONYMS = {
    "person": ("someone", "individual"),
    "people": ("persons", "folks", "crowd"),
    "man": ("guy", "gentleman"),
    "men": ("guys", "gentlemen"),
    "woman": ("lady",),
    "women": ("ladies",),
    "child": ("kid",),
    "children": ("kids",),
    "outdoors": ("outside", "outdoor"),
    "indoors": ("inside", "indoor"),
    "car": ("automobile", "vehicle"),
    "cars": ("automobiles", "vehicles"),
    "bike": ("bicycle", "cycle"),
    "talking": ("chatting", "speaking"),
    "walking": ("strolling",),
    "running": ("jogging",),
    "dog": ("puppy",),
    "boat": ("vessel",),
    "holding": ("carrying", "gripping"),
    "wearing": ("sporting",),
    "sitting": ("seated",),
    "daytime": ("day",),
    "nighttime": ("night",),
    "smiling": ("grinning",),
    "dancing": ("grooving",),
    "singing": ("vocalizing",),
    "street": ("road",),
    "drinking": ("sipping",),
    "eating": ("munching",),
    "phone": ("cellphone",),
}
CAPTION_TEMPLATES = (
    "{}",
    "a video of {}",
    "there is {}",
    "a clip showing {}",
    "footage of {}",
    "we see {}",
    "{} in this scene",
    "a shot with {}",
    "someone filmed {}",
)


@dataclass(frozen=True)
class SyntheticFeature:
    """One generated video feature: name, dimension and quality parameters."""

    name: str
    dim: int
    kind: str  # "strong", "partial" or "noisy"
    latent_noise: float  # per-shot noise in the concept space
    output_noise: float  # isotropic noise per output dimension
    code_distortion: float  # how far this feature's concept codes are from the true ones
    visible_fraction: float  # fraction of concepts the feature sees at all
    weak_fraction: float  # fraction of the seen concepts it sees only faintly (gain WEAK_GAIN)


def feature_specs(dims: Sequence[int] = DEFAULT_FEATURE_DIMS) -> list[SyntheticFeature]:
    """The generated video features for ``dims``: first strong (CLIP-like), then partial, then noisy."""
    if len(dims) < 1 or any(int(d) < 8 for d in dims):
        raise ConfigError(f"feature dims {list(dims)}", expected="one or more dimensions >= 8")
    specs: list[SyntheticFeature] = []
    names: set[str] = set()
    for i, dim in enumerate(int(d) for d in dims):
        if i == 0:
            spec = SyntheticFeature(f"demo_clip{dim}", dim, "strong", 0.12, 0.02, 0.35, 1.0, 0.25)
        elif i == 1:
            spec = SyntheticFeature(f"demo_partial{dim}", dim, "partial", 0.12, 0.02, 0.3, 0.5, 0.0)
        else:
            spec = SyntheticFeature(f"demo_noisy{dim}", dim, "noisy", 0.4, 0.05, 0.6, 1.0, 0.0)
        name, n = spec.name, 2
        while name in names:
            name, n = f"{spec.name}_{n}", n + 1
        names.add(name)
        specs.append(dataclasses.replace(spec, name=name))
    return specs


def _random_projection(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """A (rows, cols) Gaussian matrix with unit-norm rows (nearly orthogonal when cols >> rows)."""
    gauss = rng.standard_normal((rows, cols)).astype(np.float32)
    return gauss / np.linalg.norm(gauss, axis=1, keepdims=True)


class ConceptSpace:
    """Concepts (topic content words + filler words), their latent codes and the feature generators."""

    def __init__(self, seed: int, specs: Sequence[SyntheticFeature]) -> None:
        rng = np.random.default_rng([seed, 0])
        topic_words: dict[str, int] = {}
        self.topics: dict[int, Topic] = {}
        for year in YEARS.values():
            for topic in year.topics():
                self.topics[topic.number] = topic
                for word in tokenize(topic.text):
                    if word not in STOPWORDS and not word.isdigit():
                        topic_words[word] = topic_words.get(word, 0) + 1
        fillers = [w for w in dict.fromkeys(FILLER_WORDS) if w not in topic_words and w not in STOPWORDS]
        self.concepts: list[str] = sorted(topic_words) + fillers
        self.n_topic_concepts = len(topic_words)
        self.index = {w: i for i, w in enumerate(self.concepts)}
        n = len(self.concepts)
        codes = rng.standard_normal((n, LATENT_DIM)).astype(np.float32)
        self.codes = codes / np.linalg.norm(codes, axis=1, keepdims=True)
        # Background distribution: mostly filler words, some topic words (frequent topic words a bit more).
        weight = np.empty(n, dtype=np.float64)
        weight[: self.n_topic_concepts] = 0.3 * np.array(
            [topic_words[w] ** 0.5 for w in self.concepts[: self.n_topic_concepts]]
        )
        weight[: self.n_topic_concepts] /= weight[: self.n_topic_concepts].sum()
        weight[self.n_topic_concepts :] = 0.7 / max(1, len(fillers))
        self.background_p = weight / weight.sum()
        self.specs = list(specs)
        self.visibility: dict[str, np.ndarray] = {}
        self.feature_codes: dict[str, np.ndarray] = {}
        self.projection: dict[str, np.ndarray] = {}
        self.noise_banks: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for spec in self.specs:
            gain = (rng.random(n) < spec.visible_fraction).astype(np.float32)
            gain[rng.random(n) < spec.weak_fraction] *= WEAK_GAIN
            distorted = self.codes + spec.code_distortion * rng.standard_normal(self.codes.shape).astype(
                np.float32
            ) / np.sqrt(LATENT_DIM)
            self.visibility[spec.name] = gain
            self.feature_codes[spec.name] = (distorted * gain[:, None]).astype(np.float32)
            self.projection[spec.name] = _random_projection(rng, LATENT_DIM, spec.dim)
            bank_std = spec.output_noise / np.sqrt(2.0)
            self.noise_banks[spec.name] = (
                bank_std * rng.standard_normal((NOISE_BANK_ROWS, spec.dim), dtype=np.float32),
                bank_std * rng.standard_normal((NOISE_BANK_ROWS, spec.dim), dtype=np.float32),
            )
        self.word2vec_projection = _random_projection(rng, LATENT_DIM, WORD2VEC_DIM)

    @property
    def clip(self) -> SyntheticFeature:
        return self.specs[0]

    def topic_concepts(self, topic: Topic) -> np.ndarray:
        """Indices of the concepts (content words) of a topic."""
        words = [w for w in dict.fromkeys(tokenize(topic.text)) if w in self.index]
        return np.array([self.index[w] for w in words], dtype=np.int64)

    def text_vectors(self, concept_sets: Sequence[np.ndarray], rng: np.random.Generator, noise: float) -> np.ndarray:
        """CLIP-like text features: the sum of the mentioned concepts' codes in the clip feature's space."""
        latent = np.zeros((len(concept_sets), LATENT_DIM), dtype=np.float32)
        for i, concepts in enumerate(concept_sets):
            latent[i] = self.codes[concepts].sum(axis=0)
        scale = noise * np.sqrt([max(1, len(c)) / LATENT_DIM for c in concept_sets])[:, None]
        latent += scale * rng.standard_normal(latent.shape, dtype=np.float32)
        return latent @ self.projection[self.clip.name]


def _shot_ids(collection: str, n_shots: int, rng: np.random.Generator) -> list[str]:
    """Shot ids in the real style: IACC.3 ``shot<35345..39937>_<n>``, V3C1 ``shot%05d_%d``."""
    if collection == IACC3:
        first_video, max_videos, mean_shots = 35345, 39937 - 35345 + 1, 73
    else:
        first_video, max_videos, mean_shots = 1, 7475, 145
    n_videos = max(1, min(max_videos, -(-n_shots // mean_shots)))
    weights = rng.gamma(2.0, 1.0, n_videos)
    counts = 1 + rng.multinomial(n_shots - n_videos, weights / weights.sum())
    fmt = "shot{}_{}" if collection == IACC3 else "shot{:05d}_{}"
    return [fmt.format(first_video + v, s) for v in range(n_videos) for s in range(1, int(counts[v]) + 1)]


def _salience(rng: np.random.Generator, size: int | tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0.5, 1.0, size).astype(np.float32)


def _add_background(matrix: np.ndarray, space: ConceptSpace, rng: np.random.Generator) -> None:
    m = matrix.shape[0]
    per_shot = rng.integers(1, 5, m)
    rows = np.repeat(np.arange(m), per_shot)
    cols = rng.choice(len(space.concepts), size=rows.size, p=space.background_p)
    matrix[rows, cols] = np.maximum(matrix[rows, cols], _salience(rng, rows.size))


def _plant(
    matrix: np.ndarray, rows: np.ndarray, concepts: np.ndarray, rng: np.random.Generator, near_miss: bool
) -> None:
    """Give ``rows`` every concept of ``concepts`` (or all but one random concept when ``near_miss``)."""
    if rows.size == 0:
        return
    keep = np.ones((rows.size, concepts.size), dtype=bool)
    if near_miss:
        keep[np.arange(rows.size), rng.integers(0, concepts.size, rows.size)] = False
    sal = _salience(rng, keep.shape) * keep
    block = matrix[rows[:, None], concepts[None, :]]
    matrix[rows[:, None], concepts[None, :]] = np.maximum(block, sal)


def _test_concepts(
    m: int, space: ConceptSpace, topic_concepts: list[np.ndarray], plant_p: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Concept saliences (m, C) of test shots: planted topics, near misses and background."""
    matrix = np.zeros((m, len(space.concepts)), dtype=np.float32)
    for concepts, p in zip(topic_concepts, plant_p):
        for near_miss in (False, True):
            if near_miss and concepts.size < 2:
                continue
            k = rng.binomial(m, p)
            _plant(matrix, rng.choice(m, size=k, replace=False), concepts, rng, near_miss)
    _add_background(matrix, space, rng)
    return matrix


def _train_concepts(
    m: int, space: ConceptSpace, all_topic_concepts: list[np.ndarray], rng: np.random.Generator
) -> np.ndarray:
    """Concept saliences (m, C) of training videos: a topic scene (40%) or 2-3 random topic concepts + background."""
    matrix = np.zeros((m, len(space.concepts)), dtype=np.float32)
    scene = rng.random(m) < 0.4
    topic_pick = rng.integers(0, len(all_topic_concepts), m)
    for i in np.flatnonzero(scene):
        concepts = all_topic_concepts[topic_pick[i]]
        matrix[i, concepts] = _salience(rng, concepts.size)
    others = np.flatnonzero(~scene)
    n_random = rng.integers(2, 4, others.size)
    rows = np.repeat(others, n_random)
    cols = rng.integers(0, space.n_topic_concepts, rows.size)
    matrix[rows, cols] = _salience(rng, rows.size)
    _add_background(matrix, space, rng)
    return matrix


def _add_output_noise(features: np.ndarray, banks: tuple[np.ndarray, np.ndarray], rng: np.random.Generator) -> None:
    """Add per-row noise ``bank_a[i] + bank_b[j]`` (random i, j), in small blocks.

    Drawing fresh Gaussian noise for every output value dominated the cost of V3C1-sized
    collections; two banks of NOISE_BANK_ROWS rows give NOISE_BANK_ROWS**2 distinct noise rows.
    """
    bank_a, bank_b = banks
    first = np.asarray(rng.integers(0, bank_a.shape[0], features.shape[0]))
    second = np.asarray(rng.integers(0, bank_b.shape[0], features.shape[0]))
    for start in range(0, features.shape[0], 1024):
        block = slice(start, start + 1024)
        features[block] += bank_a[first[block]]
        features[block] += bank_b[second[block]]


def _video_features(matrix: np.ndarray, space: ConceptSpace, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Every video feature of the shots whose concept saliences are ``matrix``."""
    out: dict[str, np.ndarray] = {}
    for spec in space.specs:
        latent = matrix @ space.feature_codes[spec.name]
        latent += spec.latent_noise * rng.standard_normal(latent.shape, dtype=np.float32)
        features = latent @ space.projection[spec.name]
        _add_output_noise(features, space.noise_banks[spec.name], rng)
        out[spec.name] = features
    return out


def _frame_features(
    matrix: np.ndarray, n_frames: np.ndarray, space: ConceptSpace, rng: np.random.Generator
) -> np.ndarray:
    """Frame-level clip features, rows ordered by shot then frame: each frame sees each concept with p=0.85."""
    spec = space.clip
    rows = np.repeat(np.arange(matrix.shape[0]), n_frames)
    frame_matrix = matrix[rows] * (rng.random((rows.size, matrix.shape[1])) < 0.85)
    latent = frame_matrix @ space.feature_codes[spec.name]
    latent += 1.5 * spec.latent_noise * rng.standard_normal(latent.shape, dtype=np.float32)
    features = latent @ space.projection[spec.name]
    _add_output_noise(features, space.noise_banks[spec.name], rng)
    return features


def _frame_ids(ids: Sequence[str], n_frames: np.ndarray) -> list[str]:
    return [f"{shot}_{j}" for shot, count in zip(ids, n_frames) for j in range(1, int(count) + 1)]


def _push_run_scores(pool: TopK, scores: np.ndarray, first_row: int) -> None:
    """Merge a (topics, m) block of one pooled run's scores (shot rows ``first_row..``) into its top-k."""
    boundary = pool.boundary()
    for topic, row_scores in enumerate(scores):
        cols = np.flatnonzero(np.isfinite(row_scores) & (row_scores >= boundary[topic]))
        pool.push(topic, cols + first_row, row_scores[cols])


# Simple runs pooled for the qrels: (name, feature whose concept visibility it has, score noise).
POOL_RUNS = (("strong", 0, 0.15), ("partial", 1, 0.2), ("weak", 2, 0.45), ("bag", None, 0.3))


def _run_scores(
    matrix: np.ndarray, space: ConceptSpace, topic_matrix: np.ndarray, sizes: np.ndarray, rng: np.random.Generator
) -> list[np.ndarray]:
    """Scores (topics, m) of the simple pooled runs: mean topic-concept evidence plus run noise."""
    out = []
    for _, feature_index, noise in POOL_RUNS:
        if feature_index is None:
            evidence = (matrix > 0).astype(np.float32)
        else:
            spec = space.specs[min(feature_index, len(space.specs) - 1)]
            evidence = matrix * space.visibility[spec.name]
        scores = (evidence @ topic_matrix) / sizes
        scores += noise * rng.standard_normal(scores.shape, dtype=np.float32)
        out.append(np.ascontiguousarray(scores.T))
    return out


def _write_synthetic_readme(folder: Path, what: str, seed: int) -> None:
    atomic_write_text(
        folder / SYNTHETIC_MARKER,
        f"# SYNTHETIC DATA\n\n{what}\n\nGenerated by avsbench.data.synthetic (generator version {GENERATOR_VERSION}) "
        f"from seed {seed}. Nothing here is real video data: features, captions and judgments come from a "
        "latent-concept model derived from the words of the real TRECVID AVS topics. Numbers measured on it "
        "say nothing about real systems.\n",
    )


def _guard_existing(target: Path) -> None:
    if target.exists() and not (target / SYNTHETIC_MARKER).is_file():
        raise ConfigError(
            f"{target} exists and is not a generated demo collection; refusing to overwrite it",
            expected="another --rootpath",
        )


@dataclass
class _Build:
    """A collection being built in a temporary folder next to its final place."""

    root: Path
    name: str

    def __post_init__(self) -> None:
        _guard_existing(self.root / self.name)
        self.root.mkdir(parents=True, exist_ok=True)
        for stale in self.root.glob(f".{self.name}.*.tmp"):  # left by a generator that was killed
            shutil.rmtree(stale, ignore_errors=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.name}.", suffix=".tmp", dir=self.root))

    def commit(self) -> Path:
        final = self.root / self.name
        replace_dir(self.path, final)
        return final

    def abandon(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _generate_shots(
    build: _Build,
    ids: list[str],
    space: ConceptSpace,
    concept_sampler: Callable[[int, np.random.Generator], np.ndarray],
    seed: int,
    frame_features: bool,
    on_chunk: Callable[[int, np.ndarray, np.random.Generator], None] | None = None,
) -> dict:
    """Write the shot list and every video (and frame) feature, chunk by chunk; return sizes."""
    code = COLLECTION_CODES[build.name]
    n = len(ids)
    atomic_write_text(build.path / "VideoSets" / f"{build.name}.txt", "".join(s + "\n" for s in ids))
    frame_counts = np.random.default_rng([seed, code, 3]).integers(2, 6, n)
    writers = [BigFileWriter(build.path / "FeatureData" / spec.name, ids, spec.dim) for spec in space.specs]
    if frame_features:
        writers.append(
            BigFileWriter(
                build.path / "FeatureData" / "frame" / space.clip.name, _frame_ids(ids, frame_counts), space.clip.dim
            )
        )
    with contextlib.ExitStack() as stack:
        for writer in writers:
            stack.enter_context(writer)
        for chunk_no, start in enumerate(range(0, n, CHUNK_ROWS)):
            stop = min(start + CHUNK_ROWS, n)
            rng = np.random.default_rng([seed, code, 1, chunk_no])
            matrix = concept_sampler(stop - start, rng)
            features = _video_features(matrix, space, rng)
            for spec, writer in zip(space.specs, writers):
                writer.append(features[spec.name])
            if frame_features:
                writers[-1].append(_frame_features(matrix, frame_counts[start:stop], space, rng))
            if on_chunk is not None:
                on_chunk(start, matrix, rng)
    sizes = {"shots": n, "features": {spec.name: spec.dim for spec in space.specs}}
    if frame_features:
        sizes["frame_features"] = {space.clip.name: space.clip.dim}
        sizes["frames"] = int(frame_counts.sum())
    return sizes


def _qrels_for_topics(
    topics: list[Topic],
    ids: list[str],
    relevant: list[set[int]],
    pools: list[TopK],
    first_topic: int,
    rng: np.random.Generator,
) -> tuple[list[str], dict]:
    """NIST-style stratified sampled qrels lines for ``topics`` and their statistics.

    ``topics`` are the pools' topics ``first_topic, first_topic + 1, ...``.
    """
    lines: list[tuple[int, str, str]] = []
    per_topic: dict[str, dict] = {}
    depths = np.array([depth for depth, _ in STRATA])
    rates = np.array([rate for _, rate in STRATA])
    strata_totals = [
        {"stratum": s + 1, "max_rank": depth, "rate": rate, "pooled": 0, "sampled": 0, "relevant_found": 0}
        for s, (depth, rate) in enumerate(STRATA)
    ]
    for t, topic in enumerate(topics):
        qrels_id = topic.qrels_id
        best_rank: dict[int, int] = {}
        for pool in pools:
            for rank, row in enumerate(pool.rows[first_topic + t][: STRATA[-1][0]].tolist(), 1):
                if rank < best_rank.get(row, 1 << 30):
                    best_rank[row] = rank
        pooled = sorted(best_rank, key=lambda r: ids[r])
        strata = np.searchsorted(depths, [best_rank[row] for row in pooled]).tolist()
        sampled_flags = (rng.random(len(pooled)) < rates[strata]).tolist()
        judged_relevant = 0
        for row, stratum, sampled in zip(pooled, strata, sampled_flags):
            rel = (1 if row in relevant[t] else 0) if sampled else -1
            totals = strata_totals[stratum]
            totals["pooled"] += 1
            totals["sampled"] += int(sampled)
            totals["relevant_found"] += int(rel == 1)
            judged_relevant += int(rel == 1)
            lines.append((topic.number, ids[row], f"{qrels_id} 0 {ids[row]} {stratum + 1} {rel}\n"))
        per_topic[str(topic.number)] = {
            "relevant": len(relevant[t]),
            "pooled": len(pooled),
            "judged_relevant": judged_relevant,
        }
    for totals in strata_totals:
        totals["sampled_fraction"] = round(totals["sampled"] / totals["pooled"], 4) if totals["pooled"] else 0.0
    lines.sort(key=lambda x: (x[0], x[1]))
    rel_counts = [v["relevant"] for v in per_topic.values()]
    stats = {
        "topics": len(topics),
        "relevant_per_topic": {
            "min": int(min(rel_counts)),
            "median": float(np.median(rel_counts)),
            "max": int(max(rel_counts)),
        },
        "pool_size_mean": round(float(np.mean([v["pooled"] for v in per_topic.values()])), 1),
        "strata": strata_totals,
        "per_topic": per_topic,
    }
    return [line for _, _, line in lines], stats


def _write_topics_and_qrels(
    path: Path,
    years: list[Year],
    topics: list[Topic],
    ids: list[str],
    relevant: list[set[int]],
    pools: list[TopK],
    rng: np.random.Generator,
) -> dict:
    """Copy each year's topic file and write its pooled, sampled qrels; return the qrels statistics per edition."""
    editions: dict[str, dict] = {}
    offset = 0
    for year in years:
        shutil.copyfile(bundled_topic_file(year.topic_file), path / "TextData" / year.topic_file)
        year_topics = topics[offset : offset + len(year.topics())]
        index = slice(offset, offset + len(year_topics))
        lines, stats = _qrels_for_topics(year_topics, ids, relevant[index], pools, offset, rng)
        with atomic_write(path / "TextData" / year.qrels_name) as fh:
            fh.writelines(lines)
        editions[year.edition] = stats
        offset += len(year_topics)
    return editions


def _generate_test_collection(
    root: Path, name: str, years: list[Year], n_shots: int, space: ConceptSpace, seed: int, frame_features: bool
) -> dict:
    code = COLLECTION_CODES[name]
    build = _Build(root, name)
    try:
        ids = _shot_ids(name, n_shots, np.random.default_rng([seed, code, 0]))
        dropped = v3c1_dropped_shots() if name == V3C1 else frozenset()
        dropped_rows = np.array([i for i, s in enumerate(ids) if s in dropped], dtype=np.int64)
        topics = [t for y in years for t in y.topics()]
        topic_concepts = [space.topic_concepts(t) for t in topics]
        topic_matrix = np.zeros((len(space.concepts), len(topics)), dtype=np.float32)
        for j, concepts in enumerate(topic_concepts):
            topic_matrix[concepts, j] = 1.0
        sizes = topic_matrix.sum(axis=0)
        lo, hi = RELEVANT_RANGE
        targets = np.exp(np.random.default_rng([seed, code, 4]).uniform(np.log(lo), np.log(hi), len(topics)))
        plant_p = targets * np.sqrt(n_shots / DEFAULT_SHOTS) / n_shots
        relevant: list[set[int]] = [set() for _ in topics]
        shot_keys = shot_id_keys(ids)
        pools = [TopK(len(topics), STRATA[-1][0], shot_keys) for _ in POOL_RUNS]

        def judge_chunk(start: int, matrix: np.ndarray, rng: np.random.Generator) -> None:
            present = (matrix > 0).astype(np.float32) @ topic_matrix
            local_dropped = dropped_rows[(dropped_rows >= start) & (dropped_rows < start + matrix.shape[0])] - start
            present[local_dropped] = 0
            for r, t in zip(*np.nonzero(present >= sizes)):
                relevant[t].add(start + int(r))
            for pool, scores in zip(pools, _run_scores(matrix, space, topic_matrix, sizes, rng)):
                scores[:, local_dropped] = -np.inf
                _push_run_scores(pool, scores, start)

        info = _generate_shots(
            build,
            ids,
            space,
            lambda m, rng: _test_concepts(m, space, topic_concepts, plant_p, rng),
            seed,
            frame_features,
            judge_chunk,
        )
        info["videos"] = len({s.rsplit("_", 1)[0] for s in ids})
        info["dropped_shots_in_list"] = int(dropped_rows.size)
        text_rng = np.random.default_rng([seed, code, 5])
        BigFile.write(
            build.path / "TextData" / space.clip.name,
            [str(t.number) for t in topics],
            space.text_vectors(topic_concepts, text_rng, 0.1),
        )
        qrels_rng = np.random.default_rng([seed, code, 2])
        info["editions"] = _write_topics_and_qrels(build.path, years, topics, ids, relevant, pools, qrels_rng)
        _write_synthetic_readme(build.path, f"Synthetic {name} test collection in the real {name} shot-id style.", seed)
        build.commit()
    except BaseException:
        build.abandon()
        raise
    return info


def _caption_text(concepts: np.ndarray, space: ConceptSpace, rng: np.random.Generator) -> str:
    words = []
    for c in concepts:
        word = space.concepts[c]
        options = (word, *SYNONYMS.get(word, ()))
        words.append(options[rng.integers(0, len(options))])
    if len(words) > 1 and rng.random() < 0.5:
        body = ", ".join(words[:-1]) + " and " + words[-1]
    else:
        body = " ".join(words)
    return CAPTION_TEMPLATES[rng.integers(0, len(CAPTION_TEMPLATES))].format(body)


def _generate_train_collection(
    root: Path,
    name: str,
    first_video: int,
    n_videos: int,
    captions_per_video: tuple[int, int],
    space: ConceptSpace,
    seed: int,
    frame_features: bool,
) -> dict:
    code = COLLECTION_CODES[name]
    build = _Build(root, name)
    try:
        ids = [f"video{first_video + i}" for i in range(n_videos)]
        all_topic_concepts = [space.topic_concepts(t) for t in space.topics.values()]
        cap_ids: list[str] = []
        cap_texts: list[str] = []
        cap_concepts: list[np.ndarray] = []
        caption_rng = np.random.default_rng([seed, code, 6])

        def caption_chunk(start: int, matrix: np.ndarray, rng: np.random.Generator) -> None:
            for r in range(matrix.shape[0]):
                present = np.flatnonzero(matrix[r])
                for k in range(int(caption_rng.integers(captions_per_video[0], captions_per_video[1] + 1))):
                    mentioned = present[caption_rng.random(present.size) < 0.75]
                    if mentioned.size == 0:
                        mentioned = present[[int(np.argmax(matrix[r, present]))]]
                    mentioned = caption_rng.permutation(mentioned)
                    cap_ids.append(f"{ids[start + r]}#{k}")
                    cap_texts.append(_caption_text(mentioned, space, caption_rng))
                    cap_concepts.append(mentioned)

        info = _generate_shots(
            build,
            ids,
            space,
            lambda m, rng: _train_concepts(m, space, all_topic_concepts, rng),
            seed,
            frame_features,
            caption_chunk,
        )
        write_captions(build.path / "TextData" / f"{name}.caption.txt", cap_ids, cap_texts)
        BigFile.write(
            build.path / "TextData" / space.clip.name,
            cap_ids,
            space.text_vectors(cap_concepts, np.random.default_rng([seed, code, 5]), 0.3),
        )
        info["captions"] = len(cap_ids)
        _write_synthetic_readme(
            build.path, f"Synthetic captioned collection {name} (video ids video<N>, caption ids video<N>#<k>).", seed
        )
        build.commit()
    except BaseException:
        build.abandon()
        raise
    return info


def _write_word2vec(root: Path, space: ConceptSpace, seed: int) -> dict:
    """word2vec/demo500: vectors for every word the generator writes (topics, captions, templates)."""
    rng = np.random.default_rng([seed, 5])
    words: dict[str, np.ndarray | None] = {}
    for concept in space.concepts:
        for token in tokenize(concept):
            words.setdefault(token, space.codes[space.index[concept]])
    for concept, synonyms in SYNONYMS.items():
        for synonym in synonyms:
            if synonym not in words and concept in space.index:
                words[synonym] = space.codes[space.index[concept]]
    extra = set(STOPWORDS) | {w for t in CAPTION_TEMPLATES for w in tokenize(t)}
    extra |= {w for topic in space.topics.values() for w in tokenize(topic.text)}
    for word in sorted(extra):
        words.setdefault(word, None)
    names = list(words)
    latent = np.zeros((len(names), LATENT_DIM), dtype=np.float32)
    for i, word in enumerate(names):
        code = words[word]
        latent[i] = (code if code is not None else 0.0) + 0.35 / np.sqrt(LATENT_DIM) * rng.standard_normal(
            LATENT_DIM
        ).astype(np.float32)
    vectors = latent @ space.word2vec_projection + 0.01 * rng.standard_normal((len(names), WORD2VEC_DIM)).astype(
        np.float32
    )
    target = root / "word2vec" / WORD2VEC_NAME
    BigFile.write(target, names, vectors)
    _write_synthetic_readme(target.parent, "Synthetic word vectors (id = word) for the demo vocabulary.", seed)
    return {"words": len(names), "dim": WORD2VEC_DIM}


def collections_for_years(years: Sequence[str | int]) -> tuple[str, ...]:
    """The demo test collections needed for some AVS years (e.g. 2016 -> iacc.3)."""
    return tuple(dict.fromkeys(y.collection for y in parse_years(list(years))))


class DemoOptions(TypedDict, total=False):
    """Keyword options of :func:`generate_demo` and :func:`ensure_demo`; defaults in :func:`demo_params`."""

    collections: Sequence[str]
    n_shots: int
    seed: int
    feature_dims: Sequence[int] | None
    n_train_videos: int
    n_val_videos: int
    frame_features: bool


def demo_params(
    *,
    collections: Sequence[str] = (V3C1,),
    n_shots: int = DEFAULT_SHOTS,
    seed: int = DEFAULT_SEED,
    feature_dims: Sequence[int] | None = None,
    n_train_videos: int = DEFAULT_TRAIN_VIDEOS,
    n_val_videos: int = DEFAULT_VAL_VIDEOS,
    frame_features: bool = True,
) -> dict:
    """The normalised generation parameters (stored in manifest.json)."""
    unknown = [c for c in collections if c not in (V3C1, IACC3)]
    if unknown or not collections:
        raise ConfigError(
            f"unknown demo collection(s) {unknown or list(collections)}", expected=f"{V3C1} and/or {IACC3}"
        )
    if n_shots < 100 or n_train_videos < 10 or n_val_videos < 10:
        raise ConfigError("demo sizes too small", expected="at least 100 shots and 10 training/validation videos")
    return {
        "generator_version": GENERATOR_VERSION,
        "collections": sorted(dict.fromkeys(collections)),
        "n_shots": int(n_shots),
        "seed": int(seed),
        "feature_dims": [int(d) for d in (feature_dims or DEFAULT_FEATURE_DIMS)],
        "n_train_videos": int(n_train_videos),
        "n_val_videos": int(n_val_videos),
        "frame_features": bool(frame_features),
    }


def generate_demo(root: str | Path | None = None, **options: Unpack[DemoOptions]) -> dict:
    """Generate the demo root (test collections, demotrain/demoval, word2vec) and return its manifest.

    ``options`` are those of :func:`demo_params` (collections, sizes, seed, feature dims, frames).
    Each collection folder is built in a temporary folder and renamed into place; an existing
    folder of the same name that is not synthetic is never overwritten.
    """
    params = demo_params(**options)
    n_shots, seed, frame_features = params["n_shots"], params["seed"], params["frame_features"]
    n_train_videos, n_val_videos = params["n_train_videos"], params["n_val_videos"]
    root = Path(root) if root is not None else demo_root()
    for name in [*params["collections"], TRAIN_COLLECTION, VAL_COLLECTION]:
        _guard_existing(root / name)
    space = ConceptSpace(seed, feature_specs(params["feature_dims"]))
    manifest: dict = {"synthetic": True, "params": params, "concepts": len(space.concepts), "collections": {}}
    for name in params["collections"]:
        years = [y for y in YEARS.values() if y.collection == name]
        manifest["collections"][name] = _generate_test_collection(
            root, name, years, n_shots, space, seed, frame_features
        )
    manifest["collections"][TRAIN_COLLECTION] = _generate_train_collection(
        root, TRAIN_COLLECTION, 0, n_train_videos, (3, 6), space, seed, frame_features
    )
    manifest["collections"][VAL_COLLECTION] = _generate_train_collection(
        root, VAL_COLLECTION, n_train_videos, n_val_videos, (3, 6), space, seed, frame_features
    )
    manifest["word2vec"] = {WORD2VEC_NAME: _write_word2vec(root, space, seed)}
    _write_synthetic_readme(
        root,
        "Synthetic AVS demo root: "
        + ", ".join([*params["collections"], TRAIN_COLLECTION, VAL_COLLECTION])
        + f", word2vec/{WORD2VEC_NAME}.",
        seed,
    )
    atomic_write_text(root / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def read_manifest(root: str | Path) -> dict | None:
    """The manifest.json of a demo root, or None when absent or unreadable."""
    path = Path(root) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def ensure_demo(root: str | Path | None = None, **params: Unpack[DemoOptions]) -> Path:
    """Generate the demo under ``root`` (default :func:`avsbench.data.root.demo_root`) unless an identical one is there.

    Takes the keyword arguments of :func:`generate_demo`; returns the root.
    """
    root = Path(root) if root is not None else demo_root()
    wanted = demo_params(**params)
    manifest = read_manifest(root)
    complete = (
        manifest is not None
        and manifest.get("params") == wanted
        and all((root / name / SYNTHETIC_MARKER).is_file() for name in manifest.get("collections", {}))
    )
    if not complete:
        generate_demo(root, **params)
    return root
