"""Diarization: who spoke when, from voice embeddings of short overlapping speech windows.

1. Silero VAD (``app.engines.vad``) finds the speech regions.
2. Each region is cut into windows of ``WINDOW_SECONDS`` every ``STEP_SECONDS`` (a region shorter
   than a window is one shorter window); the speaker encoder embeds each window.
3. Agglomerative clustering (scipy, average linkage over cosine distances) groups the windows.
   The number of speakers is the caller's, or the number of clusters that stay apart by more than
   ``distance_threshold`` (clamped to ``min_speakers``..``max_speakers``).
4. Every 10 ms frame of speech takes the label of the window centred nearest to it; the runs of one
   label are the speaker turns.
5. Clusters whose centroid matches an enrolled voice (cosine similarity ≥ ``match_threshold``) take
   its name, one name per cluster; the others are labelled ``A``, ``B``, … in order of appearance.
"""

from __future__ import annotations

import itertools
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from faster_whisper.vad import VadOptions

from app.engines.base import SAMPLE_RATE
from app.engines.vad import Region, speech_regions

WINDOW_SECONDS = 1.5
STEP_SECONDS = 0.75
MIN_WINDOW_SECONDS = 0.4
"""Speech regions shorter than this are not embedded; they take the speaker of the nearest window."""
CLUSTER_MIN_SECONDS = 1.0
"""Only stretches of speech at least this long are clustered (shorter ones give noisy
embeddings that would pass for extra speakers); shorter ones join the nearest cluster."""
BRIDGE_SECONDS = 1.5
"""A pause up to this long between two stretches of one speaker stays inside the turn."""
FRAME_SECONDS = 0.01
TURN_VAD = VadOptions(min_silence_duration_ms=100, speech_pad_ms=30)
"""Finer than transcription's VAD: a pause of a tenth of a second may be a change of speaker."""

Floats = npt.NDArray[np.float32]
Embedder = Callable[[Floats, list[tuple[int, int]]], Floats]


@dataclass(frozen=True)
class Turn:
    """One stretch of speech by one speaker."""

    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class KnownVoice:
    """An enrolled voice: a name and its embedding."""

    name: str
    embedding: Floats


@dataclass(frozen=True)
class SpeakerCount:
    """What the caller says about the number of speakers (``None``: unknown)."""

    exact: int | None = None
    minimum: int | None = None
    maximum: int | None = None


def speech_windows(regions: Sequence[Region]) -> list[tuple[int, float, float]]:
    """Overlapping windows ``(region index, start, end)`` over the speech regions, in seconds."""
    windows: list[tuple[int, float, float]] = []
    for index, (start, end) in enumerate(regions):
        length = end - start
        if length < MIN_WINDOW_SECONDS:
            continue
        if length <= WINDOW_SECONDS:
            windows.append((index, start, end))
            continue
        position = start
        while position + WINDOW_SECONDS < end:
            windows.append((index, position, position + WINDOW_SECONDS))
            position += STEP_SECONDS
        windows.append((index, end - WINDOW_SECONDS, end))  # the last window ends with the region
    return windows


def cluster(embeddings: Floats, count: SpeakerCount, distance_threshold: float) -> npt.NDArray[np.int64]:
    """Cluster ids 0..k-1 for unit-length ``embeddings`` (average linkage, cosine distance)."""
    total = len(embeddings)
    if total <= 1:
        return np.zeros(total, dtype=np.int64)
    from scipy.cluster.hierarchy import fcluster, linkage  # 27 MiB: only once a task asks for speakers

    tree = linkage(embeddings.astype(np.float64), method="average", metric="cosine")
    if count.exact is not None:
        wanted = count.exact
    else:
        # Each merge above the threshold joins two different speakers.
        wanted = 1 + int(np.sum(tree[:, 2] > distance_threshold))
        if count.minimum is not None:
            wanted = max(wanted, count.minimum)
        if count.maximum is not None:
            wanted = min(wanted, count.maximum)
    wanted = max(1, min(wanted, total))
    labels = fcluster(tree, t=wanted, criterion="maxclust").astype(np.int64) - 1
    _, dense = np.unique(labels, return_inverse=True)
    return dense.astype(np.int64)


def _unit(vector: Floats) -> Floats:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


def _centroids(embeddings: Floats, labels: npt.NDArray[np.int64]) -> Floats:
    return np.stack([_unit(embeddings[labels == i].mean(axis=0)) for i in range(int(labels.max()) + 1)])


def window_labels(
    windows: Sequence[tuple[int, float, float]],
    embeddings: Floats,
    region_labels: dict[int, int],
    centroids: Floats,
    change_margin: float,
) -> npt.NDArray[np.int64]:
    """Each window takes its region's speaker unless it is clearly closer (by ``change_margin``) to
    another speaker's centroid, and so is its neighbour in the same region: a change of speaker
    without a pause. A lone outlier window keeps its region's speaker."""
    similarity = embeddings @ centroids.T
    labels = np.array([region_labels[region] for region, _, _ in windows], dtype=np.int64)
    best = np.argmax(similarity, axis=1)
    rows = np.arange(len(windows))
    clear = (best != labels) & (similarity[rows, best] - similarity[rows, labels] > change_margin)
    updated = labels.copy()
    for index in np.flatnonzero(clear):
        same_region = [
            other
            for other in (index - 1, index + 1)
            if 0 <= other < len(windows) and windows[int(other)][0] == windows[int(index)][0]
        ]
        if any(clear[other] and best[other] == best[index] for other in same_region):
            updated[index] = best[index]
    return updated


def frame_turns(
    regions: Sequence[Region], windows: Sequence[tuple[int, float, float]], labels: npt.NDArray[np.int64]
) -> list[tuple[float, float, int]]:
    """Turns ``(start, end, cluster)``: each speech frame takes the label of the nearest window centre."""
    if not windows:
        return []
    centres = np.array([(a + b) / 2 for _, a, b in windows])
    order = np.argsort(centres)
    centres, sorted_labels = centres[order], labels[order]
    turns: list[tuple[float, float, int]] = []
    for start, end in regions:
        times = np.arange(start, end, FRAME_SECONDS) + FRAME_SECONDS / 2
        if len(times) == 0:
            continue
        right = np.clip(np.searchsorted(centres, times), 1, len(centres) - 1) if len(centres) > 1 else None
        if right is None:
            frame_labels = np.full(len(times), sorted_labels[0])
        else:
            left = right - 1
            nearest = np.where(np.abs(times - centres[left]) <= np.abs(centres[right] - times), left, right)
            frame_labels = sorted_labels[nearest]
        changes = np.flatnonzero(np.diff(frame_labels)) + 1
        bounds = [0, *changes.tolist(), len(times)]
        for first, last in itertools.pairwise(bounds):
            turn_start = start if first == 0 else float(times[first] - FRAME_SECONDS / 2)
            turn_end = end if last == len(times) else float(times[last] - FRAME_SECONDS / 2)
            turns.append((turn_start, turn_end, int(frame_labels[first])))
    return turns


def name_clusters(
    centroids: Floats,
    turns: Sequence[tuple[float, float, int]],
    known: Sequence[KnownVoice],
    match_threshold: float,
) -> dict[int, str]:
    """A name per cluster: an enrolled voice's, or ``A``, ``B``, … by first appearance."""
    ids = sorted({cluster_id for _, _, cluster_id in turns})
    names: dict[int, str] = {}
    if known and ids:
        voices = np.stack([_unit(voice.embedding) for voice in known])
        similarity = centroids[ids] @ voices.T
        from scipy.optimize import linear_sum_assignment

        rows, columns = linear_sum_assignment(-similarity)
        for row, column in zip(rows, columns, strict=True):
            if similarity[row, column] >= match_threshold:
                names[ids[row]] = known[column].name
    letters = iter(_letters())
    taken = set(names.values())
    for _, _, cluster_id in turns:
        if cluster_id not in names:
            name = next(letters)
            while name in taken:
                name = next(letters)
            names[cluster_id] = name
    return names


def _letters() -> list[str]:
    single = list(string.ascii_uppercase)
    return single + [a + b for a in single for b in single]


def diarize(
    samples: Floats,
    embed: Embedder,
    *,
    count: SpeakerCount = SpeakerCount(),
    known: Sequence[KnownVoice] = (),
    distance_threshold: float = 0.4,
    change_margin: float = 0.1,
    match_threshold: float = 0.75,
    regions: Sequence[Region] | None = None,
) -> list[Turn]:
    """Speaker turns of 16 kHz mono ``samples``.

    Stretches of speech between pauses are clustered first (each embedded as the mean of its
    windows, steadier than one window); then windows that clearly belong to another speaker split
    their stretch (a change of speaker without a pause)."""
    if regions is None:
        regions = speech_regions(samples, options=TURN_VAD)
    windows = speech_windows(regions)
    if not windows:
        return []
    embeddings = embed(samples, [(round(a * SAMPLE_RATE), round(b * SAMPLE_RATE)) for _, a, b in windows])
    region_ids = sorted({region for region, _, _ in windows})
    region_embeddings = np.stack(
        [_unit(embeddings[[w[0] == region for w in windows]].mean(axis=0)) for region in region_ids]
    )
    lengths = np.array([regions[region][1] - regions[region][0] for region in region_ids])
    steady = lengths >= CLUSTER_MIN_SECONDS
    if not steady.any():
        steady[:] = True
    steady_clusters = cluster(region_embeddings[steady], count, distance_threshold)
    centroids = _centroids(region_embeddings[steady], steady_clusters)
    region_clusters = np.argmax(region_embeddings @ centroids.T, axis=1)
    region_clusters[steady] = steady_clusters
    by_region = dict(zip(region_ids, region_clusters.tolist(), strict=True))
    labels = window_labels(windows, embeddings, by_region, centroids, change_margin)
    raw = frame_turns(regions, windows, labels)
    names = name_clusters(centroids, raw, known, match_threshold)
    merged: list[Turn] = []
    for start, end, cluster_id in raw:
        speaker = names[cluster_id]
        if merged and merged[-1].speaker == speaker and start - merged[-1].end <= BRIDGE_SECONDS:
            merged[-1] = Turn(merged[-1].start, end, speaker)
        else:
            merged.append(Turn(start, end, speaker))
    return merged
