"""More like this: one embedding per song, nearest songs by cosine distance.

An index (:class:`LibraryIndex`) holds, per audio file, the model's embedding averaged over the
file's windows (``Tagger.window_outputs(wave)["embedding"].mean(0)``, L2-normalised), with the
file's path, size, mtime and top tags, and the identity of the model that made them (embeddings
of two models are not comparable). It is one ``.npz`` file: the embeddings as a float32 array
and the rest as UTF-8 JSON in a uint8 array, read with ``allow_pickle=False`` and written
atomically, so it is safe to open and never torn.

Updates are incremental (:func:`update_index`): only new or changed files (size or mtime) are
embedded, removed ones are dropped, and progress is saved every minute, so a killed run keeps
what it did.

Search (:class:`Searcher`) is exact (one matrix product) below :data:`ANN_THRESHOLD` songs; at
or above it, when ``hnswlib`` is installed (the ``library`` extra), :func:`update_index` also
keeps an HNSW graph beside the index and queries go through it (see docs/tag_your_library.md
for the measured crossover).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from datamodules.audio import AudioError
from datamodules.io import atomic_open, atomic_path
from lightning_module.console import write_line
from lightning_module.library.playlist import encoding_note, write_m3u  # noqa: F401

#: What the index file says it is, and its layout version.
INDEX_FORMAT = "audiotagger-library-index"
INDEX_VERSION = 1
#: From this many songs on, queries use an HNSW graph (when hnswlib is installed): per query
#: it beats the exact product above ~2,000-5,000 songs of 128-d embeddings on 2 CPU cores
#: (lightning_module/benchmark/similarity.py; docs/tag_your_library.md), and building the graph
#: for this many takes well under a second.
ANN_THRESHOLD = 5_000
#: HNSW settings: graph degree, build and search breadth (recall@10 >= 0.98 at 100k songs).
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 100
HNSW_EF_SEARCH = 64
#: Save a partial index this often while embedding (seconds).
SAVE_EVERY_SECONDS = 60.0
#: Top labels kept per task in the index (shown beside each neighbour).
TOP_TAGS = 3


class LibraryIndexError(ValueError):
    """An index file that cannot be used; ``str(err)`` is one line naming it and the reason."""


@dataclass
class Entry:
    """One song of the index: absolute path, size (bytes), mtime (ns) and top tags
    (``{"genre": [["rock", 0.97], ...], "mood": [...]}``)."""

    path: str
    size: int
    mtime_ns: int
    tags: dict[str, list[list[Any]]] = field(default_factory=dict)


@dataclass
class LibraryIndex:
    """Songs and their (N, D) float32 embeddings (rows L2-normalised), made by ``model``
    (``{"name": ..., "path": ..., "embed_dim": D}``); ``ann`` names the HNSW graph file
    kept beside the index, if any."""

    entries: list[Entry]
    embeddings: np.ndarray
    model: dict[str, Any]
    ann: dict[str, Any] | None = None

    def __len__(self) -> int:
        return len(self.entries)

    def position(self, path: str | os.PathLike) -> int | None:
        """Row of ``path`` (resolved), or None."""
        real = os.path.realpath(path)
        for i, entry in enumerate(self.entries):
            if entry.path == real:
                return i
        return None

    def save(self, path: str | os.PathLike) -> Path:
        """Write the index atomically (``.npz``: ``embeddings`` and ``meta``, no pickle)."""
        meta = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "model": self.model,
            "ann": self.ann,
            "entries": [asdict(e) for e in self.entries],
        }
        raw = np.frombuffer(json.dumps(meta, ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        embeddings = np.ascontiguousarray(self.embeddings, dtype=np.float32)
        with atomic_open(path, "wb") as f:
            np.savez(f, embeddings=embeddings, meta=raw)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> LibraryIndex:
        """Read an index written by :meth:`save`.

        Raises:
            LibraryIndexError: missing, not an index, another version, or inconsistent.
        """
        path = Path(path)
        if not path.is_file():
            raise LibraryIndexError(f"{path}: no such index (make one: similar.py index FOLDER)")
        try:
            with np.load(path, allow_pickle=False) as data:
                embeddings = np.asarray(data["embeddings"], dtype=np.float32)
                meta = json.loads(bytes(data["meta"]).decode("utf-8"))
        except (OSError, ValueError, KeyError, EOFError) as err:
            raise LibraryIndexError(f"{path}: not a library index ({err})") from err
        if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
            raise LibraryIndexError(f"{path}: not a library index")
        if meta.get("version") != INDEX_VERSION:
            raise LibraryIndexError(f"{path}: index version {meta.get('version')} not supported")
        try:
            entries = [Entry(**e) for e in meta["entries"]]
        except (KeyError, TypeError) as err:
            raise LibraryIndexError(f"{path}: malformed entries ({err})") from err
        if embeddings.ndim != 2 or embeddings.shape[0] != len(entries):
            raise LibraryIndexError(
                f"{path}: {len(entries)} songs but embeddings of shape {embeddings.shape}"
            )
        return cls(entries, embeddings, meta.get("model") or {}, meta.get("ann"))


@dataclass
class IndexStats:
    """What :func:`update_index` did: files embedded, kept from the old index, dropped (gone
    from the folder), and (file, reason) for each that could not be embedded."""

    embedded: int = 0
    kept: int = 0
    removed: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    rebuilt_reason: str = ""
    ann: bool = False

    def line(self) -> str:
        text = (
            f"embedded {self.embedded} file(s), kept {self.kept}, dropped {self.removed}, "
            f"failed {len(self.failed)}"
        )
        if self.ann:
            text += "; HNSW graph kept beside it"
        return text


# -- embeddings --------------------------------------------------------------------------------
def _normalised(vector: np.ndarray, where: str) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm == 0.0:
        raise AudioError(f"{where}: the model's embedding is zero or not finite")
    return (vector / norm).astype(np.float32)


def embed_waveform(tagger: Any, wave: Any, where: str = "audio") -> tuple[np.ndarray, dict]:
    """The L2-normalised mean embedding of a (samples,) waveform at the model's rate, (D,)
    float32, and its top tags, from one pass over its windows (``tagger.max_windows`` of
    them, as a prediction uses)."""
    starts, outputs = tagger.window_outputs(wave, tagger.max_windows)
    if "embedding" not in outputs:
        raise AudioError(f"{where}: this model has no embedding output")
    # weighted as a prediction averages its windows (an end window counts for the audio it adds)
    outputs = tagger.average(outputs, starts, len(wave))
    embedding = _normalised(np.asarray(outputs["embedding"], dtype=np.float64), where)
    tags: dict[str, list[list[Any]]] = {}
    for task in ("genre", "mood", "tags"):
        names = tagger.spec.names(task)
        if task in outputs and names:
            probs = outputs[task].tolist()
            ranked = sorted(zip(names, probs, strict=True), key=lambda pair: -pair[1])
            tags[task] = [[n, round(p, 4)] for n, p in ranked[:TOP_TAGS]]
    return embedding, tags


def embed_file(tagger: Any, path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """:func:`embed_waveform` of a file (decoded as for a prediction)."""
    return embed_waveform(tagger, tagger.load(path), str(path))


def _decode_ahead(tagger: Any, paths: Sequence[str], workers: int = 2) -> Iterator[tuple]:
    """(path, waveform or AudioError), in order, the next files decoding in threads."""

    def load(path: str) -> Any:
        try:
            return tagger.load(path)
        except AudioError as err:
            return err

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        ahead = []
        todo = iter(paths)
        for path in todo:
            ahead.append((path, pool.submit(load, path)))
            if len(ahead) >= 2 * workers:
                break
        while ahead:
            path, future = ahead.pop(0)
            for nxt in todo:
                ahead.append((nxt, pool.submit(load, nxt)))
                break
            yield path, future.result()


# -- building ----------------------------------------------------------------------------------
def _build_ann(index: LibraryIndex, index_path: Path) -> dict[str, Any] | None:
    """Build and save the HNSW graph of ``index`` beside ``index_path`` (None: hnswlib is not
    installed or the index is below :data:`ANN_THRESHOLD`)."""
    if len(index) < ANN_THRESHOLD:
        return None
    try:
        import hnswlib
    except ImportError:
        return None
    n, dim = index.embeddings.shape
    graph = hnswlib.Index(space="cosine", dim=dim)
    graph.init_index(max_elements=n, ef_construction=HNSW_EF_CONSTRUCTION, M=HNSW_M)
    graph.add_items(index.embeddings, np.arange(n))
    # A new name per build: the index file only ever points at the graph of its own rows.
    name = f"{index_path.name}.{secrets.token_hex(6)}.hnsw"
    with atomic_path(index_path.parent / name) as tmp:
        graph.save_index(str(tmp))
    return {"file": name, "count": n, "M": HNSW_M}


def _remove_old_graphs(index_path: Path, keep: str | None) -> None:
    for old in index_path.parent.glob(f"{index_path.name}.*.hnsw"):
        if old.name != keep:
            old.unlink(missing_ok=True)


def update_index(
    tagger: Any,
    folder: str | os.PathLike,
    index_path: str | os.PathLike,
    model: dict[str, Any],
    progress: bool = True,
    errors: IO[str] | None = None,
    save_every: float = SAVE_EVERY_SECONDS,
    files: Sequence[str | os.PathLike] | None = None,
) -> tuple[LibraryIndex, IndexStats]:
    """Bring the index at ``index_path`` up to date with the audio files under ``folder`` (or
    exactly ``files``, e.g. a beets library's items, when given).

    Files whose path, size and mtime match the old index keep their embedding; new and changed
    ones are embedded with ``tagger`` (one model, the next files decoding in threads); files no
    longer there are dropped. An index made by another model (``model["name"]`` differs) is
    rebuilt. The index is saved every ``save_every`` seconds and at the end, atomically.
    """
    from tqdm.auto import tqdm

    from lightning_module.inference.folder_table import audio_files

    index_path = Path(index_path)
    files = [os.path.realpath(p) for p in (audio_files(folder) if files is None else files)]
    if not files:
        raise AudioError(f"{folder}: no audio files")
    stats = IndexStats()
    old: LibraryIndex | None = None
    if index_path.exists():
        old = LibraryIndex.load(index_path)
        if old.model.get("name") != model.get("name"):
            stats.rebuilt_reason = (
                f"made by {old.model.get('name')}, not {model.get('name')}: embedding every file"
            )
            old = None
    previous = {e.path: (e, old.embeddings[i]) for i, e in enumerate(old.entries)} if old else {}
    kept: dict[str, tuple[Entry, np.ndarray]] = {}
    todo: list[str] = []
    for path in files:
        st = os.stat(path)
        hit = previous.get(path)
        if hit is not None and (hit[0].size, hit[0].mtime_ns) == (st.st_size, st.st_mtime_ns):
            kept[path] = hit
        else:
            todo.append(path)
    stats.kept = len(kept)
    stats.removed = len(set(previous) - set(files))
    done = dict(kept)

    def snapshot() -> LibraryIndex:
        rows = [done[p] for p in sorted(done)]
        dim = int(model.get("embed_dim") or (rows[0][1].size if rows else 0))
        matrix = np.stack([r[1] for r in rows]) if rows else np.zeros((0, dim), np.float32)
        return LibraryIndex([r[0] for r in rows], matrix, dict(model))

    last_save = time.monotonic()
    bar = tqdm(total=len(todo), unit="file", disable=not progress or not todo, leave=False)
    for path, wave in _decode_ahead(tagger, todo):
        bar.update(1)
        try:
            if isinstance(wave, AudioError):
                raise wave
            # the stat before the embedding: a file changed meanwhile is embedded again next run
            st = os.stat(path)
            embedding, tags = embed_waveform(tagger, wave, path)
        except (AudioError, OSError) as err:
            reason = str(err).removeprefix(f"{path}: ")
            stats.failed.append((path, reason))
            if errors is not None:
                write_line(f"skipped: {path}: {reason}", errors)
            continue
        done[path] = (Entry(path, st.st_size, st.st_mtime_ns, tags), embedding)
        stats.embedded += 1
        if time.monotonic() - last_save > save_every:
            snapshot().save(index_path)  # progress survives a kill
            last_save = time.monotonic()
    bar.close()
    index = snapshot()
    index.ann = _build_ann(index, index_path)
    stats.ann = index.ann is not None
    index.save(index_path)
    _remove_old_graphs(index_path, index.ann["file"] if index.ann else None)
    return index, stats


# -- searching ---------------------------------------------------------------------------------
@dataclass
class Neighbour:
    """A song near the query: its entry and cosine distance (0 = same direction, 2 = opposite)."""

    entry: Entry
    distance: float


class Searcher:
    """Nearest songs of an index: exact below :data:`ANN_THRESHOLD` songs, else through the
    index's HNSW graph when hnswlib and the graph are there (``method``: ``auto``, ``exact``
    or ``ann``). ``self.method`` says which one is used."""

    def __init__(
        self, index: LibraryIndex, index_path: str | os.PathLike | None = None, method: str = "auto"
    ) -> None:
        if method not in ("auto", "exact", "ann"):
            raise ValueError(f"method must be auto, exact or ann, not {method!r}")
        self.index = index
        self.graph = None
        if method != "exact" and len(index) >= (ANN_THRESHOLD if method == "auto" else 1):
            self.graph = self._load_graph(index, index_path)
        if method == "ann" and self.graph is None:
            raise LibraryIndexError(
                "no HNSW graph for this index (pip install hnswlib; made from "
                f"{ANN_THRESHOLD} songs on)"
            )
        self.method = "ann" if self.graph is not None else "exact"

    @staticmethod
    def _load_graph(index: LibraryIndex, index_path: str | os.PathLike | None) -> Any:
        if not index.ann or index_path is None:
            return None
        try:
            import hnswlib
        except ImportError:
            return None
        file = Path(index_path).parent / str(index.ann.get("file", ""))
        if not file.is_file() or index.ann.get("count") != len(index):
            return None
        graph = hnswlib.Index(space="cosine", dim=index.embeddings.shape[1])
        graph.load_index(str(file), max_elements=len(index))
        graph.set_ef(HNSW_EF_SEARCH)
        return graph

    def rows(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows and cosine distances of the ``min(k, N)`` songs nearest each (Q, D) query vector
        (L2-normalised), nearest first: two (Q, min(k, N)) arrays, int64 and float32."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        want = min(k, len(self.index))
        if self.graph is not None:
            labels, distances = self.graph.knn_query(vectors, k=want)
            return labels.astype(np.int64), distances.astype(np.float32)
        # 1 - cos: rows and queries are unit vectors; chunked so memory stays bounded
        labels = np.empty((len(vectors), want), dtype=np.int64)
        distances = np.empty((len(vectors), want), dtype=np.float32)
        for lo in range(0, len(vectors), 256):
            d = 1.0 - vectors[lo : lo + 256] @ self.index.embeddings.T
            part = np.argpartition(d, want - 1, axis=1)[:, :want]
            order = np.take_along_axis(d, part, axis=1).argsort(axis=1)
            labels[lo : lo + 256] = np.take_along_axis(part, order, axis=1)
            distances[lo : lo + 256] = np.take_along_axis(d, labels[lo : lo + 256], axis=1)
        return labels, distances

    def query(
        self, vectors: np.ndarray, k: int = 10, exclude: Sequence[int | None] | None = None
    ) -> list[list[Neighbour]]:
        """The ``k`` nearest songs of each (Q, D) query vector (L2-normalised), nearest first;
        ``exclude[q]`` is a row to leave out of query ``q``'s answer (the song itself)."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        exclude = list(exclude) if exclude is not None else [None] * len(vectors)
        if len(self.index) == 0:
            return [[] for _ in vectors]
        labels, distances = self.rows(vectors, k + 1)
        out = []
        for q, (row_labels, row_distances) in enumerate(zip(labels, distances, strict=True)):
            found = [
                Neighbour(self.index.entries[int(i)], max(0.0, float(dist)))
                for i, dist in zip(row_labels, row_distances, strict=True)
                if int(i) != exclude[q]
            ]
            out.append(found[:k])
        return out


def query_song(
    index: LibraryIndex,
    song: str | os.PathLike,
    k: int = 10,
    index_path: str | os.PathLike | None = None,
    tagger: Any = None,
    method: str = "auto",
) -> list[Neighbour]:
    """The ``k`` songs nearest ``song``: a file of the index (its stored embedding, when its
    size and mtime still match) or any other audio file (embedded with ``tagger``, which must
    be the model the index was made with).

    Raises:
        LibraryIndexError: a new file and no (or another) model.
        AudioError: the file cannot be decoded.
    """
    row = index.position(song)
    if row is not None:
        entry, st = index.entries[row], os.stat(song)
        if (entry.size, entry.mtime_ns) != (st.st_size, st.st_mtime_ns):
            row = None if tagger is not None else row  # stale, re-embed when we can
    if row is not None:
        vector = index.embeddings[row]
    else:
        if tagger is None:
            raise LibraryIndexError(
                f"{song}: not in the index; pass --checkpoint (the model the index was made with)"
            )
        vector, _ = embed_file(tagger, song)
        row = index.position(song)
    return Searcher(index, index_path, method).query(vector[None], k, [row])[0]


def model_info(model_path: str | os.PathLike, tagger: Any) -> dict[str, Any]:
    """What an index records about its model: identity (name + hash), path, embedding size,
    and the notes a user should read about it (``model_notes``: e.g. trained only on the
    synthetic demo set), so a query that loads no model can still say them."""
    from lightning_module.inference.formats.text import model_notes
    from lightning_module.library.write_tags import model_identity

    return {
        "name": model_identity(model_path),
        "path": str(Path(model_path).resolve()),
        "embed_dim": int(tagger.spec.embed_dim),
        "notes": model_notes(tagger.spec),
    }


# The command glue (index/query runs, their printing) lives in similarity_commands.
