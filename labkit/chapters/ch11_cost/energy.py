"""Energy and CO₂ of a real training run, measured by codecarbon's offline tracker, against the hardware table.

codecarbon (codecarbon.io) reads the CPU's power (Intel RAPL where the kernel exposes it, else a TDP-based
estimate for the detected processor), the RAM's (a per-GB rule) and an NVIDIA GPU's (NVML), integrates them over
the run, and turns kWh into CO₂ with the country's grid carbon intensity. Offline, the country code is given.

>>> with energy_meter(country="FRA") as reading:  # doctest: +SKIP
...     lk.train(model, tokenizer, data, num_steps=20)
>>> reading.kwh, reading.grams_co2  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass

from ...core import LabkitError
from ...meters import DEFAULT_MFU, HARDWARE, estimate_time_s, get_hardware


@dataclass
class EnergyReading:
    """What codecarbon measured over a block: seconds, kWh by component, grams of CO₂-equivalent."""

    seconds: float = 0.0
    kwh: float = 0.0
    cpu_kwh: float = 0.0
    ram_kwh: float = 0.0
    gpu_kwh: float = 0.0
    cpu_watts: float = 0.0  # codecarbon's average CPU power for the run
    grams_co2: float = 0.0
    country: str = ""
    cpu_model: str = ""

    @property
    def grams_per_kwh(self) -> float:
        return self.grams_co2 / self.kwh if self.kwh else 0.0


@contextlib.contextmanager
def energy_meter(country: str = "FRA", *, interval_s: float = 1.0):
    """Measure the energy of the block with codecarbon's OfflineEmissionsTracker (no network, no file written)."""
    from codecarbon import OfflineEmissionsTracker

    if not (isinstance(country, str) and len(country) == 3 and country.isalpha()):
        raise LabkitError(f"country is an ISO 3166-1 alpha-3 code such as 'FRA', 'USA' or 'DEU', got {country!r}.")
    logging.getLogger("codecarbon").setLevel(logging.ERROR)  # it logs every measurement at INFO
    reading = EnergyReading(country=country.upper())
    with tempfile.TemporaryDirectory() as folder:
        tracker = OfflineEmissionsTracker(country_iso_code=country.upper(), save_to_file=False, output_dir=folder,
                                          log_level="error", measure_power_secs=interval_s, tracking_mode="process")
        tracker.start()
        try:
            yield reading
        finally:
            kg = tracker.stop() or 0.0
            data = tracker.final_emissions_data
            reading.seconds, reading.kwh, reading.grams_co2 = data.duration, data.energy_consumed, kg * 1000
            reading.cpu_kwh, reading.ram_kwh, reading.gpu_kwh = data.cpu_energy, data.ram_energy, data.gpu_energy
            reading.cpu_watts, reading.cpu_model = data.cpu_power, data.cpu_model


def table_estimate_kwh(seconds: float, hardware: str = "cpu") -> float:
    """kWh the hardware table predicts for ``seconds`` at the row's full power (an upper bound for the chip)."""
    if seconds < 0:
        raise LabkitError(f"seconds cannot be negative, got {seconds!r}.")
    hw = get_hardware(hardware)
    if hw.watts is None:
        raise LabkitError(f"The hardware table has no power figure for {hw.name}: pass another row.")
    return hw.watts * seconds / 3.6e6


def run_on_each_gpu(flops: float, *, mfu: float = DEFAULT_MFU):
    """What the same training FLOPs cost on each GPU of the table: hours, dollars and kWh at full board power."""
    import pandas as pd

    if not flops > 0:
        raise LabkitError(f"flops must be positive, got {flops!r}.")
    rows = []
    for name, hw in HARDWARE.items():
        dtype = "fp32" if name == "cpu" else ("bf16" if "bf16" in hw.peak_tflops else "fp16")
        seconds = estimate_time_s(flops, hw, dtype, mfu=mfu)
        rows.append({"hardware": name, "dtype": dtype, "seconds": seconds, "usd": seconds / 3600 * hw.usd_per_hour,
                     "kwh": table_estimate_kwh(seconds, name), "price_date": hw.price_date})
    return pd.DataFrame(rows)
