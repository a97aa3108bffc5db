"""Lab 05 exercises: a zero-point quantize / de-quantize round trip, bits per weight with group scales, Wanda's
importance score, and a 2:4 mask."""

from __future__ import annotations

from ...grading import Args, Exercise, expect_function


def _tensors(seed: int, shapes) -> list:
    import torch

    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(*s, generator=gen) for s in shapes]


# ---- q1: zero-point quantize / de-quantize ------------------------------------------------------------------------


def _zp_fake_quant(w, bits):
    import torch

    qmax = 2**bits - 1
    lo, hi = w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True)
    scale = ((hi - lo) / qmax).clamp(min=1e-12)
    zero = torch.round(-lo / scale).clamp(0, qmax)
    q = torch.clamp(torch.round(w / scale) + zero, 0, qmax)
    return (q - zero) * scale


def _absmax_fake_quant(w, bits):
    import torch

    qmax = 2 ** (bits - 1) - 1
    scale = (w.abs().amax(dim=1, keepdim=True) / qmax).clamp(min=1e-12)
    return torch.clamp(torch.round(w / scale), -qmax - 1, qmax) * scale


def _zp_no_round_zero(w, bits):
    import torch

    qmax = 2**bits - 1
    lo, hi = w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True)
    scale = ((hi - lo) / qmax).clamp(min=1e-12)
    q = torch.clamp(torch.round((w - lo) / scale), 0, qmax)
    return q * scale + lo


def _zp_per_tensor(w, bits):
    return _zp_fake_quant(w.reshape(1, -1), bits).reshape(w.shape)


ZP_CASES = [Args(w, b) for w, b in zip(_tensors(5, [(8, 32), (16, 64), (4, 128), (32, 16)]), (4, 3, 8, 2))]

q1 = Exercise(
    "q1", lab="lab05", title="Zero-point quantize / de-quantize",
    checker=expect_function(_zp_fake_quant, ZP_CASES, abs_tol=1e-5, mistakes=[
        (_absmax_fake_quant, ("that is absmax (symmetric) quantization: zero-point maps each row's [min, max] onto "
                             "0 .. 2^bits - 1 with an integer zero point.")),
        (_zp_no_round_zero, "round the zero point to an integer too: it is stored as an integer code."),
        (_zp_per_tensor, "one scale per output row (dim=1 min and max), not one for the whole tensor."),
    ]),
    hints=("Per row: scale = (max - min) / (2^bits - 1).",
           "zero = round(-min / scale), clamped to [0, 2^bits - 1]; q = clamp(round(w / scale) + zero, 0, 2^bits - 1).",
           "De-quantize: (q - zero) * scale. Keep the input's shape."),
    solution_code="def my_fake_quant(w, bits):\n"
                  "    qmax = 2**bits - 1\n"
                  "    lo, hi = w.amin(dim=1, keepdim=True), w.amax(dim=1, keepdim=True)\n"
                  "    scale = ((hi - lo) / qmax).clamp(min=1e-12)\n"
                  "    zero = torch.round(-lo / scale).clamp(0, qmax)\n"
                  "    q = torch.clamp(torch.round(w / scale) + zero, 0, qmax)\n"
                  "    return (q - zero) * scale",
)

# ---- q2: bits per weight with group scales ------------------------------------------------------------------------


def _bits(bits, group, scale_bits=16):
    return bits + (scale_bits + bits) / group


BITS_CASES = [Args(4, 128), Args(3, 64), Args(8, 32, scale_bits=32), Args(2, 256)]

q2 = Exercise(
    "q2", lab="lab05", title="Bits per weight with group scales",
    checker=expect_function(_bits, BITS_CASES, rel_tol=1e-9, mistakes=[
        (lambda b, g, scale_bits=16: b + scale_bits / g, "the zero point is stored too: one `bits`-bit integer per group."),
        (lambda b, g, scale_bits=16: b, "each group also stores a scale and a zero point: spread them over its weights."),
        (lambda b, g, scale_bits=16: b + (scale_bits + b) * g, "divide the per-group extras by the group size, not multiply."),
        (lambda b, g, scale_bits=16: b + (32 + b) / g, "use scale_bits for the scale (16 for float16 by default)."),
    ]),
    hints=("Each weight costs `bits`; each group of `group` weights adds one scale and one zero point.",
           "The scale has scale_bits bits, the zero point `bits` bits.",
           "bits + (scale_bits + bits) / group."),
    solution_code="def my_bits_per_weight(bits, group, scale_bits=16):\n"
                  "    return bits + (scale_bits + bits) / group",
)

# ---- q3: Wanda's importance score ---------------------------------------------------------------------------------


def _wanda(w, x):
    return w.abs() * x.norm(dim=0).reshape(1, -1)


WANDA_CASES = [Args(w, x) for w, x in zip(_tensors(7, [(8, 16), (4, 32), (16, 8)]),
                                          _tensors(8, [(20, 16), (7, 32), (50, 8)]))]

q3 = Exercise(
    "q3", lab="lab05", title="Wanda's importance score",
    checker=expect_function(_wanda, WANDA_CASES, abs_tol=1e-4, mistakes=[
        (lambda w, x: w.abs(), "that is plain magnitude: Wanda multiplies by each input channel's activation norm."),
        (lambda w, x: w.abs() * x.abs().mean(dim=0).reshape(1, -1), ("use the L2 norm of each input channel over the "
                                                                    "tokens, not the mean |x|.")),
        (lambda w, x: w * x.norm(dim=0).reshape(1, -1), "take |W|: a large negative weight matters as much."),
    ]),
    hints=("W is (out, in); X is (tokens, in): one norm per input channel, i.e. per column of W.",
           "x.norm(dim=0) gives the L2 norm of each channel over the tokens.",
           "score = |W| * norm broadcast along the rows."),
    solution_code="def my_wanda(w, x):\n    return w.abs() * x.norm(dim=0).reshape(1, -1)",
)

# ---- q4: a 2:4 mask ---------------------------------------------------------------------------------------------


def _mask24(w):
    import torch

    groups = w.abs().reshape(-1, 4)
    keep = groups.topk(2, dim=1).indices
    return torch.zeros_like(groups, dtype=torch.bool).scatter_(1, keep, True).reshape(w.shape)


def _mask_smallest(w):
    import torch

    groups = w.abs().reshape(-1, 4)
    keep = groups.topk(2, dim=1, largest=False).indices
    return torch.zeros_like(groups, dtype=torch.bool).scatter_(1, keep, True).reshape(w.shape)


def _mask_signed(w):
    import torch

    groups = w.reshape(-1, 4)
    keep = groups.topk(2, dim=1).indices
    return torch.zeros_like(groups, dtype=torch.bool).scatter_(1, keep, True).reshape(w.shape)


def _mask_row_half(w):
    import torch

    k = w.shape[1] // 2
    keep = w.abs().topk(k, dim=1).indices
    return torch.zeros_like(w, dtype=torch.bool).scatter_(1, keep, True)


MASK_CASES = [Args(w) for w in _tensors(9, [(4, 8), (8, 16), (2, 64)])]

q4 = Exercise(
    "q4", lab="lab05", title="A 2:4 mask",
    checker=expect_function(_mask24, MASK_CASES, mistakes=[
        (_mask_smallest, "that keeps the two smallest weights of each four: keep the two largest |w|."),
        (_mask_signed, "compare magnitudes |w|: a large negative weight should survive."),
        (_mask_row_half, "that keeps half of each row anywhere (unstructured): 2:4 keeps 2 in every 4 neighbours."),
    ]),
    hints=("View the weight as groups of 4 consecutive inputs: w.reshape(-1, 4).",
           "In each group keep the 2 largest |w| (topk on dim=1) and mark them True.",
           "Return a boolean tensor of the weight's shape."),
    solution_code="def my_mask_24(w):\n"
                  "    groups = w.abs().reshape(-1, 4)\n"
                  "    keep = groups.topk(2, dim=1).indices\n"
                  "    mask = torch.zeros_like(groups, dtype=torch.bool).scatter_(1, keep, True)\n"
                  "    return mask.reshape(w.shape)",
)
