"""The speaker encoder: resemblyzer's pretrained weights in this project's own torch module.

The weights file ``resemblyzer/pretrained.pt`` comes from the ``resemblyzer`` wheel (installed
without its dependencies, see requirements.txt); only the file is read, resemblyzer's code is
never imported. The network is a 3-layer LSTM over 40 mel channels whose last hidden state goes
through a linear layer and a ReLU, L2-normalised to a 256-d voice embedding.

torch is imported here and nowhere else, so it loads only when diarization is used.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from app.speakers.features import MEL_CHANNELS, mel_frames, raise_volume

HIDDEN_SIZE = 256
EMBEDDING_SIZE = 256
LAYERS = 3
FRAMES_PER_SECOND = 100


def weights_path() -> Path:
    """Where pip put ``resemblyzer/pretrained.pt``."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the speaker encoder weights need `pip install --no-deps resemblyzer==0.1.4`")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise FileNotFoundError(f"speaker encoder weights missing: {path}")
    return path


class SpeakerEncoderNet(nn.Module):
    """Mel frames (batch, frames, 40) → unit-length voice embeddings (batch, 256)."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(MEL_CHANNELS, HIDDEN_SIZE, LAYERS, batch_first=True)
        self.linear = nn.Linear(HIDDEN_SIZE, EMBEDDING_SIZE)

    def forward(self, mels: torch.Tensor) -> torch.Tensor:
        _, (hidden, _) = self.lstm(mels)
        raw: torch.Tensor = torch.relu(self.linear(hidden[-1]))
        unit: torch.Tensor = raw / torch.linalg.vector_norm(raw, dim=1, keepdim=True).clamp_min(1e-8)
        return unit


class SpeakerEncoder:
    """Embeds windows of 16 kHz audio. Thread-safe; load once with :func:`shared_encoder`."""

    def __init__(self, path: Path | None = None, *, threads: int = 0) -> None:
        checkpoint = torch.load(path or weights_path(), map_location="cpu", weights_only=True)
        self._net = SpeakerEncoderNet()
        # The checkpoint also holds training-only similarity parameters; only the network is kept.
        state = {
            key: value
            for key, value in checkpoint["model_state"].items()
            if key.split(".")[0] in ("lstm", "linear")
        }
        self._net.load_state_dict(state)
        self._net.eval()
        self._threads = threads
        self._lock = threading.Lock()

    def embed_windows(
        self, samples: npt.NDArray[np.float32], windows: list[tuple[int, int]], batch: int = 64
    ) -> npt.NDArray[np.float32]:
        """One embedding per ``(start, end)`` sample range; ranges of equal length batch best.
        The audio's volume is raised as a whole first (quiet recordings to -30 dBFS)."""
        if not windows:
            return np.zeros((0, EMBEDDING_SIZE), dtype=np.float32)
        mel = mel_frames(raise_volume(samples))
        ranges = [(start // 160, max(start // 160 + 1, end // 160)) for start, end in windows]
        out = np.zeros((len(windows), EMBEDDING_SIZE), dtype=np.float32)
        by_length: dict[int, list[int]] = {}
        for index, (first, last) in enumerate(ranges):
            by_length.setdefault(last - first, []).append(index)
        with self._lock, torch.inference_mode():
            previous = torch.get_num_threads()
            if self._threads:
                torch.set_num_threads(self._threads)
            try:
                for length, indices in by_length.items():
                    for offset in range(0, len(indices), batch):
                        chosen = indices[offset : offset + batch]
                        stack = np.zeros((len(chosen), length, MEL_CHANNELS), dtype=np.float32)
                        for row, index in enumerate(chosen):
                            first, last = ranges[index]
                            piece = mel[first:last]
                            stack[row, : len(piece)] = piece
                        out[chosen] = self._net(torch.from_numpy(stack)).numpy()
            finally:
                if self._threads:
                    torch.set_num_threads(previous)
        return out

    def embed_voice(
        self, samples: npt.NDArray[np.float32], window: int = 160 * 160, step: int = 160 * 80
    ) -> npt.NDArray[np.float32]:
        """One embedding for a whole (single-speaker) sample: the normalised mean of its windows."""
        length = len(samples)
        starts = list(range(0, max(1, length - window + 1), step)) if length > window else [0]
        partials = self.embed_windows(samples, [(start, min(length, start + window)) for start in starts])
        mean = partials.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        unit: npt.NDArray[np.float32] = (mean / norm if norm > 0 else mean).astype(np.float32)
        return unit


_shared: SpeakerEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder(threads: int = 0) -> SpeakerEncoder:
    """The process's encoder, loaded on first use (17 MB of weights); ``threads`` applies when it loads."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SpeakerEncoder(threads=threads)
        return _shared
