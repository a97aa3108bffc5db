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


def _start_cuda_peak(result: PeakMemory, device: str | None, method: str) -> bool:
    """Set ``result.device`` ("auto"/None: CUDA when present); on CUDA reset the peak counter and start from the
    memory allocated now. True when the measurement runs on CUDA (nothing more to start)."""
    import torch

    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    result.device = "cuda" if str(device).startswith("cuda") else "cpu"
    if result.device != "cuda":
        return False
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    result.before_bytes = torch.cuda.memory_allocated()
    result.method = method
    return True


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
        if _start_cuda_peak(self.result, self.device, "torch.cuda.max_memory_allocated"):
            import torch

            self._torch = torch
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


class measure_live_peak:
    """Context manager: the peak bytes of live tensors during a block, above the level before it.

    CUDA: torch's peak allocated bytes (max_memory_allocated), as measure_peak_memory. CPU: torch.profiler with
    ``profile_memory=True`` reports every allocation and free of torch's CPU allocator; the running sum of those
    events is the bytes of tensors the block made and still holds, and its maximum is the live peak, whatever the C
    allocator keeps cached. Tensors made before the block and freed inside it do not lower the sum (the profiler did
    not see them made), so start the block where few such tensors die (before a step, with gradients set to None).
    The profiler records every operator; a training step runs about 5-15% slower inside the block.

    >>> with measure_live_peak() as live:  # doctest: +SKIP
    ...     loss = model(**batch).loss; loss.backward()
    >>> live.peak_gib  # doctest: +SKIP
    """

    def __init__(self, device: str | None = None):
        self.device = device
        self.result = PeakMemory()
        self._prof = None

    def __enter__(self) -> PeakMemory:
        if _start_cuda_peak(self.result, self.device, "torch.cuda.max_memory_allocated (live tensors)"):
            return self.result
        from torch.profiler import ProfilerActivity, profile

        self.result.method = "torch.profiler memory events (live tensors)"
        self._prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True)
        self._prof.__enter__()
        return self.result

    def __exit__(self, *exc) -> None:
        import torch

        r = self.result
        if r.device == "cuda":
            torch.cuda.synchronize()
            r.peak_bytes = max(0, torch.cuda.max_memory_allocated() - r.before_bytes)
            return
        self._prof.__exit__(*exc)
        r.peak_bytes = live_peak_of(self._prof)
        self._prof = None


def live_peak_of(prof) -> int:
    """The largest running sum of CPU allocations minus frees among a finished torch.profiler run's memory events."""
    cpu = _cpu_device_type()
    events = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
              if e.name() == "[memory]" and e.device_type() == cpu]
    events.sort(key=lambda t: t[0])
    running = peak = 0
    for _, nbytes in events:
        running += nbytes
        peak = max(peak, running)
    return peak


def tensor_bytes(*objects) -> int:
    """Bytes of the distinct tensor storages held by modules (parameters, buffers, 4-bit quantization states) and
    optimizers (their state), each storage counted once: what a training step starts from."""
    import torch

    seen = {}

    def add(t):
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            st = t.untyped_storage()
            seen[(st.device.type, st.data_ptr())] = st.nbytes()

    def add_quant_state(qs):
        while qs is not None:  # bitsandbytes QuantState: absmax, code, and a nested state with double quantization
            for name in ("absmax", "code", "offset"):
                add(getattr(qs, name, None))
            qs = getattr(qs, "state2", None)

    for obj in objects:
        if isinstance(obj, torch.nn.Module):
            for t in (*obj.parameters(), *obj.buffers()):
                add(t)
                add_quant_state(getattr(t, "quant_state", None))
        elif isinstance(obj, torch.optim.Optimizer) or hasattr(obj, "state_dict") and hasattr(obj, "state"):
            for state in obj.state.values():
                for value in state.values():
                    add(value)
        else:
            add(obj)
    return sum(seen.values())


_CPU_DEVICE_TYPE = None


def _cpu_device_type():
    global _CPU_DEVICE_TYPE
    if _CPU_DEVICE_TYPE is None:
        import torch

        _CPU_DEVICE_TYPE = torch._C._autograd.DeviceType.CPU
    return _CPU_DEVICE_TYPE
