"""Mel filterbank features in the form resemblyzer's speaker encoder was trained on.

Resemblyzer (Apache-2.0) feeds its LSTM a *power* mel spectrogram (not a log one): a 25 ms Hann
window, a 10 ms hop, 40 Slaney-style mel channels over 0-8 kHz at 16 kHz, frames centred with zero
padding. Its waveforms are first raised to -30 dBFS (never lowered). This module computes the same
features with numpy alone.
"""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
MEL_CHANNELS = 40
TARGET_DBFS = -30.0
_INT16_MAX = 2**15 - 1

Floats = npt.NDArray[np.float32]


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above."""
    linear_step = 200.0 / 3.0
    log_start_mel = 1000.0 / linear_step
    log_step = np.log(6.4) / 27.0
    mels = hz / linear_step
    above = hz >= 1000.0
    mels[above] = log_start_mel + np.log(hz[above] / 1000.0) / log_step
    return mels


def _mel_to_hz(mels: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    linear_step = 200.0 / 3.0
    log_start_mel = 1000.0 / linear_step
    log_step = np.log(6.4) / 27.0
    hz = mels * linear_step
    above = mels >= log_start_mel
    hz[above] = 1000.0 * np.exp(log_step * (mels[above] - log_start_mel))
    return hz


@functools.cache
def mel_filterbank() -> Floats:
    """(``MEL_CHANNELS``, ``WINDOW_SAMPLES // 2 + 1``) triangular filters with Slaney area normalisation."""
    fft_hz = np.linspace(0.0, SAMPLE_RATE / 2, WINDOW_SAMPLES // 2 + 1)
    edges_hz = _mel_to_hz(
        np.linspace(
            _hz_to_mel(np.array([0.0]))[0], _hz_to_mel(np.array([SAMPLE_RATE / 2]))[0], MEL_CHANNELS + 2
        )
    )
    widths = np.diff(edges_hz)
    distances = edges_hz[:, None] - fft_hz[None, :]
    rising = -distances[:-2] / widths[:-1, None]
    falling = distances[2:] / widths[1:, None]
    filters = np.maximum(0.0, np.minimum(rising, falling))
    filters *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    return filters.astype(np.float32)


@functools.cache
def _hann() -> Floats:
    """The periodic Hann window (as used for spectral analysis)."""
    n = np.arange(WINDOW_SAMPLES)
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * n / WINDOW_SAMPLES)).astype(np.float32)


def raise_volume(samples: Floats) -> Floats:
    """Scale quiet audio up to ``TARGET_DBFS`` RMS; louder audio is left as it is."""
    rms = float(np.linalg.norm(samples)) / np.sqrt(len(samples)) * _INT16_MAX if len(samples) else 0.0
    if rms <= 0.0:
        return samples
    change_db = TARGET_DBFS - 20.0 * np.log10(rms / _INT16_MAX)
    if change_db <= 0:
        return samples
    return (samples * np.float32(10 ** (change_db / 20.0))).astype(np.float32)


def mel_frames(samples: Floats, block: int = 2000) -> Floats:
    """(frames, ``MEL_CHANNELS``) power mel spectrogram, one frame per 10 ms (centred frames).
    Computed ``block`` frames at a time, so a long file never holds its whole spectrum."""
    pad = WINDOW_SAMPLES // 2
    padded = np.pad(samples.astype(np.float32), (pad, pad))
    count = 1 + (len(padded) - WINDOW_SAMPLES) // HOP_SAMPLES
    frames = np.lib.stride_tricks.as_strided(
        padded,
        shape=(count, WINDOW_SAMPLES),
        strides=(padded.strides[0] * HOP_SAMPLES, padded.strides[0]),
        writeable=False,
    )
    mel: Floats = np.empty((count, MEL_CHANNELS), dtype=np.float32)
    filters = mel_filterbank().T
    for first in range(0, count, block):
        spectrum = np.fft.rfft(frames[first : first + block] * _hann(), axis=1)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        mel[first : first + block] = power @ filters
    return mel
