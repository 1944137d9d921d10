"""Known accelerators: memory and dense bf16 peak FLOP/s. Torch-free, shared by the speed
monitor (MFU) and the app's estimates. An unknown device gets no MFU rather than a wrong one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class Accelerator:
    name: str
    memory_gib: float
    peak_bf16_flops: float  # dense (no sparsity), per device, datasheet figure
    match: tuple[str, ...]  # lower-case substrings of torch.cuda.get_device_name()
    float8: bool = True  # float8 tensor cores (compute capability 8.9+): train_module.float8 can run


# Order matters: more specific names first ("h100 pcie" before "h100").
ACCELERATORS: tuple[Accelerator, ...] = (
    Accelerator("H200", 141.0, 989.5e12, ("h200",)),
    Accelerator("H100-PCIe", 80.0, 756.0e12, ("h100 pcie",)),
    Accelerator("H100-NVL", 94.0, 835.0e12, ("h100 nvl",)),
    Accelerator("H100", 80.0, 989.5e12, ("h100",)),
    Accelerator("B200", 180.0, 2250.0e12, ("b200",)),
    Accelerator("A100-40GB", 40.0, 312.0e12, ("a100-sxm4-40gb", "a100-pcie-40gb", "a100 40gb"), float8=False),
    Accelerator("A100", 80.0, 312.0e12, ("a100",), float8=False),
    Accelerator("L40S", 48.0, 362.0e12, ("l40s",)),
    Accelerator("A10G", 24.0, 70.0e12, ("a10g",), float8=False),
)

BY_NAME = {a.name: a for a in ACCELERATORS}


def accelerator_for_device(device_name: str) -> Optional[Accelerator]:
    """The table entry whose pattern appears in a CUDA device name, or None if unknown."""
    lowered = device_name.lower()
    for accelerator in ACCELERATORS:
        if any(pattern in lowered for pattern in accelerator.match):
            return accelerator
    return None
