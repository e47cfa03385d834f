"""Device planning: which devices the pool uses and how many CPU threads each instance gets."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Device:
    kind: str
    """``cpu`` or ``cuda``."""
    index: int = 0

    @property
    def name(self) -> str:
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def cuda_device_count() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:
        return 0


def parse_devices(spec: str, *, cuda_count: int | None = None) -> list[Device]:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:0,cuda:1`` → devices.

    ``auto`` picks every GPU when there is one, else the CPU. Naming a GPU that does not
    exist is an error, so a typo never silently falls back to the CPU.
    """
    count = cuda_device_count() if cuda_count is None else cuda_count
    text = spec.strip().lower()
    if text == "auto":
        return [Device("cuda", i) for i in range(count)] or [Device("cpu")]
    if text == "cpu":
        return [Device("cpu")]
    if text == "cuda":
        if count == 0:
            raise ValueError("devices=cuda but no CUDA device is visible")
        return [Device("cuda", i) for i in range(count)]
    devices: list[Device] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "cpu":
            device = Device("cpu")
        elif part.startswith("cuda:") and part[5:].isdigit():
            device = Device("cuda", int(part[5:]))
            if device.index >= count:
                raise ValueError(f"{part} does not exist ({count} CUDA device(s) visible)")
        else:
            raise ValueError(f"unknown device {part!r}; use auto, cpu, cuda or cuda:N")
        if device not in devices:
            devices.append(device)
    if not devices:
        raise ValueError("no device given")
    return devices


def cpu_threads_per_instance(configured: int, instances_on_cpu: int, cores: int | None = None) -> int:
    """Threads for each CPU instance so that threads × instances never exceeds the cores."""
    cores = cores or os.cpu_count() or 1
    fair_share = max(1, cores // max(1, instances_on_cpu))
    return min(configured, fair_share) if configured > 0 else fair_share
