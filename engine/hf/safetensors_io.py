"""Reading and writing HuggingFace weight files (safetensors, single file or sharded + index).

Only safetensors are read: `pytorch_model.bin` is a pickle and can run code when loaded.
Shapes are read from the file headers first, so every mismatch is found before any tensor is
loaded or any output is written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from engine.errors import UserError

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
DEFAULT_MAX_SHARD_BYTES = 5 * 1024**3  # HF's own default shard size (5 GB)


def weight_locations(model_dir: Path) -> Dict[str, Path]:
    """HF tensor name -> the safetensors file holding it."""
    model_dir = Path(model_dir)
    index = model_dir / INDEX_NAME
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise UserError(INDEX_NAME, f"cannot read the shard index {index}: {exc}") from None
        locations = {}
        for name, file in weight_map.items():
            path = model_dir / file
            if Path(file).name != file or not path.is_file():
                raise UserError(INDEX_NAME, f"shard {file!r} listed for {name} is missing from {model_dir}")
            locations[name] = path
        return locations
    files = [model_dir / SINGLE_NAME] if (model_dir / SINGLE_NAME).is_file() else sorted(model_dir.glob("*.safetensors"))
    if not files:
        hint = " (pytorch_model.bin is not read: re-save the model with safe_serialization=True)" \
            if any(model_dir.glob("pytorch_model*.bin")) else ""
        raise UserError("SRC", f"no *.safetensors weights in {model_dir}{hint}")
    locations = {}
    for path in files:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                locations[name] = path
    return locations


def read_shapes(locations: Dict[str, Path]) -> Dict[str, Tuple[int, ...]]:
    """HF tensor name -> shape, from the file headers only."""
    shapes: Dict[str, Tuple[int, ...]] = {}
    by_file: Dict[Path, List[str]] = {}
    for name, path in locations.items():
        by_file.setdefault(path, []).append(name)
    for path, names in by_file.items():
        with safe_open(str(path), framework="pt") as handle:
            for name in names:
                shapes[name] = tuple(handle.get_slice(name).get_shape())
    return shapes


def load_tensors(locations: Dict[str, Path], names: List[str],
                 on_tensor: Optional[Callable[[str], None]] = None) -> Dict[str, torch.Tensor]:
    """Load `names` (opening each shard file once); `on_tensor` is called after each one."""
    out: Dict[str, torch.Tensor] = {}
    by_file: Dict[Path, List[str]] = {}
    for name in names:
        by_file.setdefault(locations[name], []).append(name)
    for path, file_names in by_file.items():
        with safe_open(str(path), framework="pt") as handle:
            for name in file_names:
                out[name] = handle.get_tensor(name)
                if on_tensor is not None:
                    on_tensor(name)
    return out


def plan_shards(tensors: Dict[str, torch.Tensor], max_shard_bytes: int) -> List[List[str]]:
    """Group tensor names into shards of at most max_shard_bytes (a larger tensor gets its own)."""
    shards: List[List[str]] = [[]]
    used = 0
    for name, tensor in tensors.items():
        size = tensor.numel() * tensor.element_size()
        if shards[-1] and used + size > max_shard_bytes:
            shards.append([])
            used = 0
        shards[-1].append(name)
        used += size
    return shards


def save_weights(tensors: Dict[str, torch.Tensor], out_dir: Path, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
                 on_tensor: Optional[Callable[[str], None]] = None) -> List[Path]:
    """Write `tensors` as HF does: model.safetensors, or numbered shards plus an index."""
    out_dir = Path(out_dir)
    shards = plan_shards(tensors, max_shard_bytes)
    written: List[Path] = []
    weight_map: Dict[str, str] = {}
    for k, names in enumerate(shards, start=1):
        file = SINGLE_NAME if len(shards) == 1 else f"model-{k:05d}-of-{len(shards):05d}.safetensors"
        # safetensors refuses views and shared storage: give each tensor its own contiguous copy.
        part = {name: tensors[name].detach().contiguous().clone() for name in names}
        save_file(part, str(out_dir / file), metadata={"format": "pt"})
        written.append(out_dir / file)
        for name in names:
            weight_map[name] = file
            if on_tensor is not None:
                on_tensor(name)
    if len(shards) > 1:
        total = sum(t.numel() * t.element_size() for t in tensors.values())
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
        written.append(out_dir / INDEX_NAME)
    return written
