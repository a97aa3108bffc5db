"""Units and constants every part of the kit shares, each defined (and cited) once.

>>> from labkit.units import GIB, DTYPE_BYTES
>>> 7e9 * DTYPE_BYTES["bf16"] / GIB  # a 7B model's weights in bf16, in GiB
13.03...
"""

from __future__ import annotations

KIB, MIB, GIB = 2**10, 2**20, 2**30  # binary prefixes (IEC 80000-13): what torch and /proc report

DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}  # bytes per element of each floating-point dtype

# The label value torch's cross-entropy skips (torch.nn.CrossEntropyLoss(ignore_index=-100), and Hugging Face's
# collators): prompt and padding positions carry it, so only the answer tokens count in the loss.
IGNORE_INDEX = -100

# NF4 blocks of 64 weights with one absmax each; double quantization stores those absmax values in 8 bits, in blocks
# of 256 with one fp32 scale each: 4 + 8/64 + 32/(64*256) = 4.127 bits per weight, against 4 + 32/64 = 4.5 without
# (Dettmers et al. 2023, "QLoRA", section 3).
NF4_BLOCKSIZE, NF4_NESTED_BLOCKSIZE = 64, 256
NF4_BITS = {"nf4": 4 + 32 / NF4_BLOCKSIZE, "nf4+dq": 4 + 8 / NF4_BLOCKSIZE + 32 / (NF4_BLOCKSIZE * NF4_NESTED_BLOCKSIZE)}

QUANTIZATIONS = (None, "nf4", "int8")  # how lk.load_model can store the base weights (bitsandbytes)

# Optimizers lk.train runs and meters.predict_memory counts: torch's AdamW, bitsandbytes' 8-bit AdamW (paged: its
# states page out to CPU memory under pressure, CUDA only) and plain SGD (no state).
OPTIMIZERS = ("adamw", "adamw8bit", "paged_adamw8bit", "sgd")
