"""Text side of LAFF: tokenizer, stopwords, vocabularies and the text feature pipeline.

Encoders (which ones a model uses is configuration):
- ``bow``: counts over a vocabulary built from training captions (stopwords dropped, repeats counted);
- ``w2v``: the mean of the word vectors of the DISTINCT non-stopword tokens found in a word-vector
  BigFile (averaged in float64, then float32; zeros if none);
- ``gru``: ``<start>`` tokens ``<end>`` (stopwords kept, unknown words -> ``<unk>``) as ids for the
  model's GRU, which mean-pools over the valid steps;
- precomputed features (e.g. CLIP) read from a BigFile keyed by caption id or topic number, or,
  for the CLIP feature of a model that holds a CLIP text tower, computed online
  (:class:`~avsbench.model.clip_text.ClipTextEncoder`, vectors cached per text).

A dataset is featurized ONCE into a compact :class:`TextCorpus` (padded id arrays, mean word
vectors, precomputed rows); batches are then gathered from it on the device.
"""

from __future__ import annotations

import hashlib
import io
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from avsbench.data.atomic import atomic_write_bytes, atomic_write_text
from avsbench.data.bigfile import BigFile
from avsbench.data.captions import tokenize
from avsbench.errors import ConfigError, InputFormatError, MissingDataError, UnknownIdError
from avsbench.model.clip_text import ClipTextEncoder, ClipTextTower
from avsbench.model.clip_text_tokenizer import TRUNCATIONS
from avsbench.model.config import FeatureSpec, ModelConfig

# Our own list of English function words (articles, pronouns, prepositions, auxiliaries,
# conjunctions). Number words and spatial content words (e.g. "near", "two") are kept on purpose.
STOPWORDS: frozenset[str] = frozenset(
    """
    a an the this that these those some any each every either neither such
    i me my mine myself we us our ours ourselves you your yours yourself yourselves
    he him his himself she her hers herself it its itself they them their theirs themselves
    who whom whose which what whatever whoever when where why how
    am is are was were be been being have has had having do does did doing done
    will would shall should can could may might must ought
    and or but nor so yet if then else than because as until while although though whether
    of at by for with about against between into through during before after above below
    to from up down in out on off over under again further once
    here there all both few more most other own same too very only just also not no
    s t d ll m o re ve y don isn aren wasn weren hasn haven hadn doesn didn won wouldn
    shan shouldn can cannot couldn mustn needn mightn
    """.split()
)

GRU_SPECIALS = ("<pad>", "<start>", "<end>", "<unk>")
PAD, START, END, UNK = range(4)


def content_tokens(tokens: Sequence[str]) -> list[str]:
    """``tokens`` without stopwords (repeats kept)."""
    return [t for t in tokens if t not in STOPWORDS]


def build_vocab(texts: Iterable[str], threshold: int, drop_stopwords: bool) -> list[str]:
    """Words seen at least ``threshold`` times, by count descending, ties in order of first appearance."""
    counts: Counter[str] = Counter()
    for text in texts:
        tokens = tokenize(text)
        counts.update(content_tokens(tokens) if drop_stopwords else tokens)
    return [w for w, n in sorted(counts.items(), key=lambda item: -item[1]) if n >= threshold]


def build_gru_vocab(texts: Iterable[str], threshold: int) -> list[str]:
    """The GRU vocabulary: ``<pad> <start> <end> <unk>`` then the words (stopwords kept)."""
    words = [w for w in build_vocab(texts, threshold, drop_stopwords=False) if w not in GRU_SPECIALS]
    return [*GRU_SPECIALS, *words]


def write_vocab_file(path: str | Path, words: Sequence[str]) -> None:
    """One word per line (atomic)."""
    atomic_write_text(path, "".join(w + "\n" for w in words))


def read_vocab_file(path: str | Path) -> list[str]:
    """Read a vocabulary written by :func:`write_vocab_file`."""
    path = Path(path)
    if not path.is_file():
        raise MissingDataError("vocabulary file not found", path=path)
    try:
        words = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise InputFormatError("vocabulary file is not UTF-8 text", path=path, expected="one word per line") from None
    for lineno, word in enumerate(words, 1):
        if not word or word != word.strip() or " " in word:  # the line is not echoed: it may be any file's content
            raise InputFormatError(
                "bad vocabulary entry (empty, or with spaces)", path=path, line=lineno, expected="one word per line"
            )
    if len(set(words)) != len(words):
        raise InputFormatError("duplicate words", path=path, expected="unique words")
    return words


def _index(words: Sequence[str]) -> dict[str, int]:
    return {w: i for i, w in enumerate(words)}


def _pad(rows: list[list[int]], pad: int, min_width: int = 1) -> np.ndarray:
    width = max([min_width, *(len(r) for r in rows)])
    out = np.full((len(rows), width), pad, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


def bow_counts(texts: Sequence[str], vocab: Sequence[str]) -> np.ndarray:
    """(n, V) float32 counts of the non-stopword in-vocabulary tokens (repeats counted)."""
    index = _index(vocab)
    out = np.zeros((len(texts), len(vocab)), dtype=np.float32)
    for i, text in enumerate(texts):
        for t in content_tokens(tokenize(text)):
            j = index.get(t)
            if j is not None:
                out[i, j] += 1.0
    return out


class WordVectors:
    """A word-vector BigFile (id = word) used for the ``w2v`` mean."""

    def __init__(self, path: str | Path) -> None:
        self.bigfile = BigFile(path)
        self.path = Path(path)

    @property
    def dim(self) -> int:
        return self.bigfile.dim

    def mean_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """(n, dim) float32: per text, the mean of the vectors of its distinct in-table non-stopword words."""
        per_text = [sorted(set(content_tokens(tokenize(t)))) for t in texts]
        row_of = self.bigfile.row_of
        words = sorted({w for ws in per_text for w in ws if w in row_of})
        column = _index(words)
        indptr, indices, data = [0], [], []
        for ws in per_text:
            found = [column[w] for w in ws if w in column]
            indices.extend(found)
            data.extend([1.0 / max(len(found), 1)] * len(found))
            indptr.append(len(indices))
        weights = sp.csr_matrix(
            (np.array(data, dtype=np.float64), np.array(indices, dtype=np.int64), np.array(indptr)),
            shape=(len(texts), len(words)),
        )
        table = self.bigfile.read(words).astype(np.float64) if words else np.zeros((0, self.dim))
        return np.asarray(weights @ table, dtype=np.float32).reshape(len(texts), self.dim)


@dataclass
class TextCorpus:
    """Featurized texts in compact form; :meth:`batch` expands rows into model inputs."""

    size: int
    bow_ids: Tensor | None = None  # (n, L) long, padded with the vocabulary size
    bow_size: int = 0
    w2v: Tensor | None = None  # (n, dim) float32
    gru_ids: Tensor | None = None  # (n, L) long, padded with <pad>
    gru_lengths: Tensor | None = None  # (n,) long
    precomputed: dict[str, Tensor] = field(default_factory=dict)

    def to(self, device: str | torch.device) -> TextCorpus:
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return TextCorpus(
            self.size,
            move(self.bow_ids),
            self.bow_size,
            move(self.w2v),
            move(self.gru_ids),
            move(self.gru_lengths),
            {k: v.to(device) for k, v in self.precomputed.items()},
        )

    def batch(self, rows: Tensor | None = None) -> dict[str, Tensor]:
        """Model inputs for ``rows`` (all rows if None), on the corpus's device."""
        out: dict[str, Tensor] = {}
        pick = (lambda t: t) if rows is None else (lambda t: t[rows])
        if self.bow_ids is not None:
            ids = pick(self.bow_ids)
            counts = torch.zeros(ids.shape[0], self.bow_size + 1, device=ids.device)
            counts.scatter_add_(1, ids, torch.ones(ids.shape, device=ids.device))
            out["bow"] = counts[:, : self.bow_size]
        if self.w2v is not None:
            out["w2v"] = pick(self.w2v)
        if self.gru_ids is not None and self.gru_lengths is not None:
            lengths = pick(self.gru_lengths)
            width = int(lengths.max()) if lengths.numel() else 1
            out["gru"] = pick(self.gru_ids)[:, :width]
            out["gru.lengths"] = lengths
        for name, values in self.precomputed.items():
            out[name] = pick(values)
        return out


class TextPipeline:
    """Turns texts into the inputs of :meth:`LaffModel.encode_texts` for one model config."""

    def __init__(
        self,
        config: ModelConfig,
        bow_vocab: Sequence[str] | None = None,
        gru_vocab: Sequence[str] | None = None,
        word_vectors: WordVectors | None = None,
        clip_tower: ClipTextTower | None = None,
    ) -> None:
        self.config = config
        self.clip_tower = clip_tower
        self._clip_encoders: dict[str, ClipTextEncoder] = {}
        self._clip_cache: dict[tuple[str, str], np.ndarray] = {}
        # Optional on-disk cache of online CLIP vectors, one .npy per (truncation, text); the folder
        # must belong to this model's CLIP weights (rank puts it under --cache, keyed by the weights' hash).
        self.clip_cache_dir: Path | None = None
        self.bow_vocab = list(bow_vocab) if bow_vocab is not None else None
        self.gru_vocab = list(gru_vocab) if gru_vocab is not None else None
        self.word_vectors = word_vectors
        bow = config.text_feature_of_kind("bow")
        if bow is not None and (self.bow_vocab is None or len(self.bow_vocab) != bow.dim):
            raise ConfigError(f"the bow encoder needs a {bow.dim}-word vocabulary", expected=f"{bow.dim} words")
        gru = config.text_feature_of_kind("gru")
        if gru is not None and not self.gru_vocab:
            raise ConfigError("the gru encoder needs its vocabulary")
        w2v = config.text_feature_of_kind("w2v")
        if w2v is not None and word_vectors is not None and word_vectors.dim != w2v.dim:
            raise ConfigError(
                f"word vectors {word_vectors.path} are {word_vectors.dim}-d", expected=f"{w2v.dim}-d word vectors"
            )
        self._bow_index = _index(self.bow_vocab or [])
        self._gru_index = _index(self.gru_vocab or [])

    @property
    def precomputed_features(self) -> list[str]:
        """Names of the text features read from ``TextData/<name>/`` BigFiles."""
        return [s.name for s in self.config.text_features if s.kind == "precomputed"]

    @property
    def online_clip_feature(self) -> str | None:
        """The text feature the model's CLIP text tower computes online (None without a tower).

        It is the precomputed feature that stood for the reference's ``CLIP_encoder`` (or the only
        precomputed feature), when its dim is the tower's output dim.
        """
        specs = [s for s in self.config.text_features if s.kind == "precomputed"]
        clip = [s for s in specs if s.reference_name == "CLIP_encoder"] or (specs if len(specs) == 1 else [])
        if self.clip_tower is None or not clip or clip[0].dim != self.clip_tower.dims.embed:
            return None
        return clip[0].name

    def clip_features(self, texts: Sequence[str], truncation: str = "reference") -> np.ndarray:
        """(n, embed) float32 CLIP text features computed online, each text encoded once per truncation."""
        if self.clip_tower is None:
            raise MissingDataError(
                "the model holds no CLIP text tower", expected="a model imported with its CLIP weights"
            )
        if truncation not in TRUNCATIONS:
            raise ConfigError(f"unknown CLIP truncation {truncation!r}", expected=" or ".join(TRUNCATIONS))
        encoder = self._clip_encoders.get(truncation)
        if encoder is None:
            encoder = self._clip_encoders[truncation] = ClipTextEncoder(self.clip_tower, truncation=truncation)
        todo = sorted({t for t in texts if (truncation, t) not in self._clip_cache})
        todo = [t for t in todo if not self._read_cached_vector(truncation, t)]
        if todo:
            for text, vector in zip(todo, encoder.encode(todo)):
                self._clip_cache[(truncation, text)] = vector
                self._write_cached_vector(truncation, text, vector)
        dim = self.clip_tower.dims.embed
        return np.stack([self._clip_cache[(truncation, t)] for t in texts]) if texts else np.zeros((0, dim), np.float32)

    def _vector_file(self, truncation: str, text: str) -> Path | None:
        if self.clip_cache_dir is None:
            return None
        return self.clip_cache_dir / truncation / (hashlib.sha256(text.encode("utf-8")).hexdigest() + ".npy")

    def _read_cached_vector(self, truncation: str, text: str) -> bool:
        """Take the vector of ``text`` from the on-disk cache into memory; False when absent or unusable."""
        path, tower = self._vector_file(truncation, text), self.clip_tower
        if path is None or tower is None or not path.is_file():
            return False
        try:
            vector = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return False
        if vector.shape != (tower.dims.embed,) or vector.dtype != np.float32 or not np.isfinite(vector).all():
            return False
        self._clip_cache[(truncation, text)] = vector
        return True

    def _write_cached_vector(self, truncation: str, text: str, vector: np.ndarray) -> None:
        path = self._vector_file(truncation, text)
        if path is not None:
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(vector, dtype=np.float32), allow_pickle=False)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(path, buffer.getvalue())

    def _precomputed_rows(
        self, spec: FeatureSpec, ids: Sequence[str], precomputed: Mapping[str, BigFile] | None
    ) -> Tensor:
        bigfile = (precomputed or {}).get(spec.name)
        if bigfile is None:
            raise MissingDataError(
                f"no BigFile for the precomputed text feature {spec.name!r}", expected=f"TextData/{spec.name}/"
            )
        if bigfile.dim != spec.dim:
            raise InputFormatError(
                f"text feature is {bigfile.dim}-d", path=bigfile.path, expected=f"{spec.dim}-d as the model"
            )
        try:
            return torch.from_numpy(bigfile.read(list(ids)))
        except UnknownIdError as exc:
            raise UnknownIdError(f"precomputed text feature {spec.name!r}: {exc.message}", path=exc.path) from None

    def corpus(
        self,
        texts: Sequence[str],
        ids: Sequence[str],
        precomputed: Mapping[str, BigFile] | None = None,
        *,
        online: Mapping[str, str] | None = None,
    ) -> TextCorpus:
        """Featurize ``texts`` (with ids ``ids``, used for the precomputed features) once.

        ``online`` maps a precomputed feature (the model's CLIP feature) to the CLIP truncation
        with which to compute it online instead of reading it from ``precomputed``.
        """
        if len(texts) != len(ids):
            raise ConfigError(f"{len(texts)} texts but {len(ids)} ids")
        corpus = TextCorpus(size=len(texts))
        token_lists = [tokenize(t) for t in texts]
        if self.config.text_feature_of_kind("bow") is not None:
            size = len(self._bow_index)
            rows = [[self._bow_index[t] for t in content_tokens(ts) if t in self._bow_index] for ts in token_lists]
            corpus.bow_ids = torch.from_numpy(_pad(rows, size))
            corpus.bow_size = size
        w2v = self.config.text_feature_of_kind("w2v")
        if w2v is not None:
            if self.word_vectors is None:
                raise MissingDataError(
                    "the w2v text encoder needs a word-vector BigFile", expected="--w2v or the model's w2v path"
                )
            corpus.w2v = torch.from_numpy(self.word_vectors.mean_vectors(texts))
        if self.config.text_feature_of_kind("gru") is not None:
            rows = [[START, *(self._gru_index.get(t, UNK) for t in ts), END] for ts in token_lists]
            corpus.gru_ids = torch.from_numpy(_pad(rows, PAD))
            corpus.gru_lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
        for spec in self.config.text_features:
            if spec.kind != "precomputed":
                continue
            if spec.name in (online or {}):
                if spec.name != self.online_clip_feature:
                    raise ConfigError(
                        f"the model cannot compute its text feature {spec.name!r} online",
                        expected="a CLIP text tower in the model (import-laff keeps it)",
                    )
                corpus.precomputed[spec.name] = torch.from_numpy(self.clip_features(texts, (online or {})[spec.name]))
            else:
                corpus.precomputed[spec.name] = self._precomputed_rows(spec, ids, precomputed)
        return corpus

    def featurize(
        self,
        texts: Sequence[str],
        ids: Sequence[str],
        precomputed: Mapping[str, BigFile] | None = None,
        *,
        online: Mapping[str, str] | None = None,
    ) -> dict[str, Tensor]:
        """The input dict of :meth:`LaffModel.encode_texts` for ``texts`` (CPU tensors)."""
        return self.corpus(texts, ids, precomputed, online=online).batch()
