"""The anatomy of one training step, from the PyTorch profiler: bytes per category over time (its memory timeline),
time per phase (forward, backward, optimizer) and the top operators.

The memory timeline is torch.profiler's own analysis (``torch.profiler._memory_profiler.MemoryProfileTimeline``, the
data behind ``prof.export_memory_timeline``): it follows every tensor the step allocates and sorts it into
parameters, gradients, optimizer state, activations, temporaries, inputs and autograd details. It counts live tensors
only, so its peak is what a step needs, whatever the C allocator keeps cached.

>>> prof = profile_step(lambda: train_step(model, params, opt, batch, settings))  # doctest: +SKIP
>>> prof.at_peak  # bytes per category at the live peak  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from ...core import LabkitError
from ...units import GIB, MIB

PHASES = ("forward", "backward", "optimizer")  # record_function labels ladder.train_step puts around each phase
# the profiler's categories, as the kit's predict_memory components name them
CATEGORY_NAMES = {"PARAMETER": "parameters", "GRADIENT": "gradients", "OPTIMIZER_STATE": "optimizer state",
                  "ACTIVATION": "activations", "TEMPORARY": "temporaries", "INPUT": "inputs",
                  "AUTOGRAD_DETAIL": "autograd detail", None: "unknown"}
# which profiler categories each predicted component covers (inputs, temporaries and the rest count as activations)
COMPONENT_OF = {"parameters": "weights", "gradients": "gradients", "optimizer state": "optimizer",
                "activations": "activations", "temporaries": "activations", "inputs": "activations",
                "autograd detail": "activations", "unknown": "activations"}


@dataclass
class StepProfile:
    """One profiled step. Its timings (phases_ms, top_ops) are read from the profiler's events when first asked for:
    listing the events costs about half a second, which the live peak alone does not need."""

    timeline: object  # DataFrame: time_ms and bytes per category (columns named as CATEGORY_NAMES' values)
    live_peak_bytes: int  # the largest sum of live tensor bytes over the step
    at_peak: dict  # bytes per category at that moment
    prof: object = field(repr=False)  # the torch.profiler.profile that recorded the step
    top: int = 10  # how many operators top_ops lists

    @cached_property
    def phases_ms(self) -> dict:
        """Wall milliseconds of forward, backward, optimizer (the record_function ranges train_step puts)."""
        phases = {name: 0.0 for name in PHASES}
        for event in self.prof.events():
            if event.name in phases:
                phases[event.name] += event.time_range.elapsed_us() / 1000
        return phases

    @cached_property
    def top_ops(self):
        """DataFrame: the operators by self CPU time (ms), their calls and share of the step."""
        import pandas as pd

        ops = [e for e in self.prof.key_averages() if e.key.startswith("aten::")]
        step_ms = sum(self.phases_ms.values()) or 1.0
        top_ops = pd.DataFrame([{"operator": e.key, "self_ms": e.self_cpu_time_total / 1000, "calls": e.count,
                                 "total_ms": e.cpu_time_total / 1000} for e in ops])
        top_ops = top_ops.sort_values("self_ms", ascending=False).head(self.top).reset_index(drop=True)
        top_ops["share_of_step"] = top_ops["self_ms"] / step_ms
        return top_ops

    def by_component(self) -> dict:
        """Bytes at the live peak grouped as predict_memory's components (weights, gradients, ...)."""
        out = {"weights": 0, "gradients": 0, "optimizer": 0, "activations": 0}
        for category, value in self.at_peak.items():
            out[COMPONENT_OF[category]] += value
        return out


def profile_step(step, *, top: int = 10) -> StepProfile:
    """Run ``step()`` (a function doing one training step) once under torch.profiler with memory on."""
    import numpy as np
    import pandas as pd
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import _CATEGORY_TO_INDEX, MemoryProfileTimeline

    if not callable(step):
        raise LabkitError("profile_step takes a function that runs one training step, e.g. lambda: train_step(...).")
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step()
    device = "cpu"
    timeline = MemoryProfileTimeline(prof._memory_profile())
    times, sizes = timeline._coalesce_timeline(device)
    if not times:
        raise LabkitError("The profiler saw no memory on the CPU: run the step on the CPU (profile_step measures "
                          "CPU tensors; on CUDA use torch.cuda.memory._record_memory_history).")
    names = ["before"] + [CATEGORY_NAMES[c.name if c is not None else None] for c in _CATEGORY_TO_INDEX]
    sizes = np.asarray(sizes, dtype=np.int64)
    frame = pd.DataFrame(sizes, columns=names).drop(columns="before")
    frame.insert(0, "time_ms", (np.asarray(times) - times[0]) / 1000)
    total = frame.drop(columns="time_ms").sum(axis=1)
    at = int(total.idxmax())
    at_peak = {k: int(v) for k, v in frame.drop(columns="time_ms").iloc[at].items()}
    return StepProfile(frame, int(total.max()), at_peak, prof, top)


def compare_with_prediction(profile: StepProfile, estimate) -> object:
    """Measured bytes at the live peak against a MemoryEstimate, per component: one row each, in MiB."""
    import pandas as pd

    measured = profile.by_component()
    predicted = {"weights": estimate.weights, "gradients": estimate.gradients, "optimizer": estimate.optimizer,
                 "activations": estimate.activations}
    rows = [{"component": k, "measured_mib": measured[k] / MIB, "predicted_mib": predicted[k] / MIB}
            for k in predicted]
    rows.append({"component": "total", "measured_mib": profile.live_peak_bytes / MIB,
                 "predicted_mib": (estimate.total - estimate.overhead) / MIB})
    frame = pd.DataFrame(rows).set_index("component")
    frame["error"] = frame["measured_mib"] / frame["predicted_mib"].where(frame["predicted_mib"] > 0) - 1
    return frame


def plot_timeline(profile: StepProfile, title: str = ""):
    """Stacked areas: bytes per category over the step (GiB), with the phases shaded."""
    import plotly.graph_objects as go

    frame = profile.timeline
    fig = go.Figure()
    for name in frame.columns[1:]:
        if frame[name].abs().max() == 0:
            continue
        fig.add_trace(go.Scatter(x=frame["time_ms"], y=frame[name] / GIB, name=name, stackgroup="one",
                                 mode="lines", line={"width": 0.5}))
    fig.update_layout(title=title or f"live tensors over one step (peak {profile.live_peak_bytes / GIB:.3f} GiB)",
                      xaxis_title="ms since the step began", yaxis_title="GiB", height=360)
    return fig


def plot_phases(profiles: dict):
    """Horizontal stacked bars of forward/backward/optimizer milliseconds, one bar per profiled step."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for phase in PHASES:
        fig.add_trace(go.Bar(y=list(profiles), x=[p.phases_ms[phase] for p in profiles.values()], name=phase,
                             orientation="h"))
    fig.update_layout(barmode="stack", height=240, xaxis_title="ms", title="where the step's time goes")
    return fig
