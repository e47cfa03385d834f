"""Batched encoder and decoder calls on a loaded faster-whisper model.

``app.engines.longform`` decides what each batch row decodes (the next window of one stream);
this module runs the rows: log-mel windows in, one encoder pass per window, one CTranslate2
``generate`` call per (window length, search options) with a prompt per row.

**Short windows.** Whisper was trained on 30 s windows, but its encoder runs on fewer frames
too, and its cost grows faster than the window: a 10 s window takes about a sixth of a 30 s
one's time. So a stream that holds less than 30 s of audio (a short clip) is encoded in a
window cut to its audio plus ``ENCODED_TAIL_SECONDS``, rounded up to ``ENCODED_STEP_SECONDS``
(never shorter: with less context Whisper loops). On the shared clips this kept English WER
equal (tiny.en) or better (base), and the error of the other languages equal or better, against
full windows (``bench/RESULTS.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

import ctranslate2
import numpy as np
import numpy.typing as npt
from faster_whisper import WhisperModel

from app.schemas.task import DecodeOptions

CHUNK_SECONDS = 30.0
ENCODED_STEP_SECONDS = 10.0
"""Short windows are cut in steps of this many seconds, and are never shorter: below about 10 s
of context Whisper (tiny.en) repeats itself on short clips."""
ENCODED_TAIL_SECONDS = 1.0
"""Silence a short window keeps after its audio, so the last words are not taken for speech
cut off at the window's end."""
Sampling = dict[str, float | int]


def sampling_options(options: DecodeOptions, temperature: float) -> tuple[float, Sampling]:
    """CTranslate2's search arguments for one temperature (as ``generate_with_fallback``)."""
    if temperature > 0:
        return temperature, {
            "beam_size": 1,
            "num_hypotheses": options.best_of,
            "sampling_topk": 0,
            "sampling_temperature": temperature,
        }
    return temperature, {"beam_size": options.beam_size, "patience": options.patience}


def encoded_seconds(length: float, *, short: bool = True) -> float:
    """Seconds of the window ``length`` seconds of audio are encoded in (see the module doc)."""
    if not short:
        return CHUNK_SECONDS
    steps = max(1, math.ceil((length + ENCODED_TAIL_SECONDS) / ENCODED_STEP_SECONDS - 1e-9))
    return min(CHUNK_SECONDS, steps * ENCODED_STEP_SECONDS)


def _batch(features: Sequence[npt.NDArray[np.float32]]) -> ctranslate2.StorageView:
    return ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack(features)))


@dataclass
class Encoded:
    """The encoder output of a batch's windows, in groups of rows that can share one
    ``generate`` call (equal window length and search options), each one ``StorageView`` on the
    model's device."""

    groups: list[tuple[list[int], ctranslate2.StorageView]]
    rows: int
    on_cpu: bool

    def row(self, number: int) -> ctranslate2.StorageView:
        """One row's encoder output as a batch of one, on the model's device (word alignment)."""
        for numbers, view in self.groups:
            if number in numbers:
                host = view if self.on_cpu else view.to_device(ctranslate2.Device.cpu)
                single = ctranslate2.StorageView.from_array(
                    np.ascontiguousarray(np.asarray(host)[numbers.index(number)][None])
                )
                return single if self.on_cpu else single.to_device(ctranslate2.Device.cuda)
        raise IndexError(number)


class BatchedDecoder:
    """Encodes and decodes batch rows with a loaded ``WhisperModel`` (blocking calls)."""

    def __init__(self, model: WhisperModel, batch_size: int, *, short_windows: bool = True) -> None:
        self.model = model
        self.batch_size = batch_size
        self.short_windows = short_windows

    @property
    def multilingual(self) -> bool:
        return bool(self.model.model.is_multilingual)

    @property
    def _on_cpu(self) -> bool:
        return bool(self.model.model.device == "cpu")

    def encode(
        self,
        features: Sequence[npt.NDArray[np.float32]],
        keys: Sequence[Hashable],
        pause: Callable[[], None] | None = None,
    ) -> Encoded:
        """The encoder output of every window, grouped by (window length, ``keys``). On a CPU the
        windows are encoded one at a time and stacked: about 20 % faster than one batched call
        there (tiny.en and base, int8, 2 cores; the tokens decoded from it are identical). On a
        GPU each group is encoded in one call. ``pause`` is called before each call."""
        model = self.model.model
        grouped: dict[tuple[object, ...], list[int]] = {}
        for number, (window, key) in enumerate(zip(features, keys, strict=True)):
            grouped.setdefault((window.shape, key), []).append(number)
        groups = []
        for numbers in grouped.values():
            windows = [features[number] for number in numbers]
            if self._on_cpu and len(windows) > 1:
                outputs = []
                for window in windows:
                    if pause is not None:
                        pause()
                    outputs.append(np.asarray(model.encode(_batch([window]), to_cpu=False)))
                view = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.concatenate(outputs)))
            else:
                if pause is not None:
                    pause()
                view = model.encode(_batch(windows), to_cpu=False)
            groups.append((numbers, view))
        return Encoded(groups, len(features), self._on_cpu)

    def detect_language(self, encoded: Encoded) -> list[tuple[str, float]]:
        """The most likely language of every row of ``encoded`` (``en`` for English-only models)."""
        if not self.multilingual:
            return [("en", 1.0)] * encoded.rows
        found: list[tuple[str, float]] = [("en", 1.0)] * encoded.rows
        for numbers, view in encoded.groups:
            for number, ranked in zip(numbers, self.model.model.detect_language(view), strict=True):
                found[number] = (ranked[0][0][2:-2], ranked[0][1])
        return found

    def generate(
        self, encoded: Encoded, prompts: list[list[int]], sampling: list[Sampling]
    ) -> list[ctranslate2.models.WhisperGenerationResult]:
        """One ``generate`` call per group of ``encoded`` (rows of a group share ``sampling``)."""
        results: list[ctranslate2.models.WhisperGenerationResult] = [None] * encoded.rows  # filled below
        for numbers, view in encoded.groups:
            found = self.model.model.generate(
                view,
                [prompts[number] for number in numbers],
                max_length=self.model.max_length,
                return_scores=True,
                return_no_speech_prob=True,
                suppress_blank=True,
                suppress_tokens=[-1],
                max_initial_timestamp_index=50,
                **sampling[numbers[0]],
            )
            for number, result in zip(numbers, found, strict=True):
                results[number] = result
        return results
