"""Measured peak memory of a block of code (CUDA allocator statistics, or the process's peak resident size)."""

from __future__ import annotations

import ctypes
import os
import sys
from dataclasses import dataclass

from ..units import GIB, MIB

_PINNED = False


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux: reset the peak resident size (VmHWM) to the current size
        return True
    except OSError:
        return False


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt parameters (malloc.h)


def _glibc():
    """The C library where it is glibc (Linux), else None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def _mallopt(param: int, value: int) -> bool:
    libc = _glibc()
    return bool(libc is not None and hasattr(libc, "mallopt") and libc.mallopt(param, value))


def _trim_glibc_heap() -> None:
    """Hand the blocks glibc keeps from earlier frees back to the OS (malloc_trim), so a block's peak starts from
    live memory: otherwise a run after a bigger one reuses the cached blocks and its peak reads as ~0."""
    libc = _glibc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


def pin_glibc_allocator() -> bool:
    """Make glibc return freed tensors to the OS at once, so the resident size tracks live tensors.

    glibc raises its mmap threshold (up to 32 MiB) after frees and then keeps freed blocks for reuse: the
    resident size stays high after a backward pass, like CUDA's reserved-but-unallocated cache. Fixing the
    threshold at glibc's initial 128 KiB (mallopt M_MMAP_THRESHOLD) turns that cache off for later allocations.
    That costs speed: every large tensor becomes a fresh mapping (a QLoRA step of SmolLM2 took 1.7x as long on
    the course machine), so undo it with unpin_glibc_allocator. Returns False where glibc is absent.
    """
    global _PINNED
    if not _PINNED:
        _PINNED = _mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    return _PINNED


def unpin_glibc_allocator() -> None:
    """Give glibc its cache back: the mmap threshold at its dynamic maximum (32 MiB on 64-bit), trim at 2x that."""
    global _PINNED
    if _PINNED:
        _mallopt(M_MMAP_THRESHOLD, 32 * MIB)
        _mallopt(M_TRIM_THRESHOLD, 64 * MIB)
        _PINNED = False


@dataclass
class PeakMemory:
    """What measure_peak_memory found; filled in when the ``with`` block ends."""

    device: str = "cpu"  # "cuda" or "cpu"
    peak_bytes: int = 0  # peak during the block minus the level just before it
    before_bytes: int = 0  # the level before the block (CUDA: allocated; CPU: resident size)
    method: str = ""  # how it was measured
    note: str = ""  # caveats, e.g. a peak that could not be reset

    @property
    def peak_gib(self) -> float:
        return self.peak_bytes / GIB

    def __str__(self) -> str:
        return f"peak {self.peak_gib:.3f} GiB above the start ({self.device}, {self.method})"


class measure_peak_memory:
    """Context manager: the peak memory of a block above the level before it.

    CUDA: torch's peak allocated bytes (reset_peak_memory_stats / max_memory_allocated). CPU on Linux: the
    process's peak resident size (VmHWM, reset through /proc/self/clear_refs), starting from live memory (the
    heap is trimmed first); with ``pin_allocator`` glibc returns freed memory at once during the block (see
    pin_glibc_allocator) and gets its cache back after it. Elsewhere: psutil's resident size after the block, or
    the lifetime peak from getrusage, which cannot be reset (said in ``.note``).

    >>> with measure_peak_memory() as mem:  # doctest: +SKIP
    ...     loss = model(**batch).loss; loss.backward()
    >>> mem.peak_gib  # doctest: +SKIP
    """

    def __init__(self, device: str | None = None, *, pin_allocator: bool = True):
        self.device = device
        self.pin_allocator = pin_allocator
        self.result = PeakMemory()
        self._torch = None

    def __enter__(self) -> PeakMemory:
        device = self.device
        if device is None or device == "auto":
            import torch

            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.result.device = "cuda" if str(device).startswith("cuda") else "cpu"
        if self.result.device == "cuda":
            import torch

            self._torch = torch
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.result.before_bytes = torch.cuda.memory_allocated()
            self.result.method = "torch.cuda.max_memory_allocated"
            return self.result
        self._unpin = self.pin_allocator and not _PINNED  # an outer block that pinned also unpins
        if self._unpin:
            pin_glibc_allocator()
        _trim_glibc_heap()
        rss = _status_bytes("VmRSS")
        if rss is not None and _reset_hwm():
            self.result.before_bytes = _status_bytes("VmRSS")
            self.result.method = "VmHWM (peak resident size, reset per block)"
            self._cpu = "hwm"
        else:
            self._cpu = "fallback"
            self.result.before_bytes = _rss_fallback()
            self.result.method = "resident size after the block (psutil)"
            self.result.note = ("This system cannot reset the peak resident size (no /proc/self/clear_refs): the "
                                "number is the resident size at the end of the block, so a peak inside the block "
                                "may be missed; on Linux the peak is exact.")
        return self.result

    def __exit__(self, *exc) -> None:
        r = self.result
        if r.device == "cuda":
            self._torch.cuda.synchronize()
            r.peak_bytes = max(0, self._torch.cuda.max_memory_allocated() - r.before_bytes)
            return
        if self._unpin:
            unpin_glibc_allocator()
        if self._cpu == "hwm":
            r.peak_bytes = max(0, (_status_bytes("VmHWM") or 0) - r.before_bytes)
        else:
            after = _rss_fallback()
            lifetime = _lifetime_peak()
            r.peak_bytes = max(0, after - r.before_bytes)
            if lifetime is not None:
                r.note += f" The process's lifetime peak (getrusage) is {lifetime / GIB:.2f} GiB."


def _rss_fallback() -> int:
    try:
        import psutil

        return psutil.Process(os.getpid()).memory_info().rss
    except ImportError:
        return _lifetime_peak() or 0


def _lifetime_peak() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux
