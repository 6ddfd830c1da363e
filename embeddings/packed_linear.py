"""bf16 linear layers whose weights oneDNN lays out for the CPU once, at load, instead of on every call.

A plain ``nn.Linear`` in bf16 hands oneDNN its weights in PyTorch's row-major layout, and oneDNN reorders
them into the blocked layout its AMX kernels read, again on every call. For a search (one text of 20–40
tokens) that reorder costs more than the multiply: on an Intel Xeon with AMX (2026-12-06, one thread), a
24-row ``384 → 1536`` layer took 164 µs plain and 115 µs with its weights reordered once
(``torch.ops.mkldnn._reorder_linear_weight``, the op PyTorch's own compiler uses when it freezes a model),
and a whole query 17.2 against 21.5 ms (p50, mixed search texts). The multiply itself is unchanged: every
output is bit for bit the same as the plain layer's.

On an AMD EPYC Zen 4 (AVX-512 BF16, no AMX; 2026-12-06, 150 dev queries of the eval sets, one at a time)
the swap took a query from 18.0 to 14.0 ms (p50) and documents from 13.7 to 14.9 a second, again bit for bit.
On an Intel Xeon showing AVX-512 BF16 but not AMX (2026-12-07, 300 mixed search texts, one thread) a query took
38.3 ms packed against 44.5 plain (fp32: 34.9), so ``auto`` does not choose bf16 there (``backend_choice``), but
a configured ``torch-bf16`` is still faster packed. The encoder packs its layers wherever the CPU multiplies bf16
natively (``onnx_backend.cpu_has_bf16``); a CPU that would emulate bf16 keeps plain layers.
"""
from __future__ import annotations

import torch


def packing_available() -> bool:
    """Whether this PyTorch build has oneDNN's reorder-once linear ops."""
    mkldnn = torch.ops.mkldnn
    return torch.backends.mkldnn.is_available() and all(
        hasattr(mkldnn, op) for op in ("_reorder_linear_weight", "_linear_pointwise"))


class PackedLinear(torch.nn.Module):
    """An inference-only bf16 ``nn.Linear`` whose weights were reordered for oneDNN once.

    ``forward`` gives exactly what the original layer gave for the same input; the original weights are
    not kept, so the model's memory does not grow.
    """

    def __init__(self, linear: torch.nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("packed_weight", torch.ops.mkldnn._reorder_linear_weight(linear.weight.detach()))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, self.packed_weight, self.bias, "none", [], "")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed=True"


def _packs_exactly(linear: torch.nn.Linear) -> bool:
    """Whether this CPU runs the packed op, and gives the plain layer's output for a probe input."""
    probe = torch.linspace(-1, 1, 3 * linear.in_features).reshape(3, linear.in_features).to(linear.weight.dtype)
    try:
        with torch.inference_mode():
            return bool(torch.equal(PackedLinear(linear)(probe), linear(probe)))
    except RuntimeError:  # oneDNN has no bf16 kernel for this CPU
        return False


def pack_linear_layers(model: torch.nn.Module) -> int:
    """Replace every bf16 ``nn.Linear`` in ``model`` by a :class:`PackedLinear`; returns how many were replaced.

    For inference only (the packed weights take no gradient). Layers of any other dtype stay as they are.
    Returns 0 and changes nothing when this PyTorch build lacks the ops, or when on this CPU the packed
    op fails or differs from the plain layer on a probe input.
    """
    if not packing_available():
        return 0
    targets = [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
               if type(child) is torch.nn.Linear and child.weight.dtype == torch.bfloat16]
    if not targets or not _packs_exactly(targets[0][2]):
        return 0
    for parent, name, child in targets:
        setattr(parent, name, PackedLinear(child))
    return len(targets)
