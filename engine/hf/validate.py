"""The conversion's proof: the engine model and the HF model give the same logits.

Both run in float32 on CPU on the same random token ids; the check compares what was actually
written (the converted files are read back), so a mapping mistake, a RoPE layout difference or
a lost tensor shows up as a large difference rather than as a silently worse model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from engine.nn.transformer import Transformer

# fp32 on CPU: the two implementations order a few reductions differently (SDPA vs eager
# softmax, fused rms_norm); deep real models drift to ~1e-4, tiny ones stay near 1e-6.
DEFAULT_ATOL = 1e-3


class ValidationFailed(RuntimeError):
    """The converted model's logits differ from the source's by more than the tolerance."""


@dataclass
class ValidationResult:
    max_abs_diff: Optional[float]  # None when skipped
    note: str  # one line for the console


def transformers_available() -> bool:
    try:
        import transformers  # noqa: F401
    except ImportError:
        return False
    return True


def load_hf_model(model_dir: Path):
    """AutoModelForCausalLM in float32, eval mode (transformers 4 and 5 name the dtype argument
    differently)."""
    import transformers
    from transformers import AutoModelForCausalLM

    transformers.logging.set_verbosity_error()  # load reports would bury the one result line
    transformers.logging.disable_progress_bar()
    major = int(transformers.__version__.split(".")[0])
    dtype_arg = {"dtype": torch.float32} if major >= 5 else {"torch_dtype": torch.float32}
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), **dtype_arg)
    return model.eval()


def random_tokens(vocab_size: int, batch: int = 2, seq_len: int = 32, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, (batch, seq_len), generator=gen)  # (B, T)


@torch.no_grad()
def max_logit_difference(engine_model: Transformer, hf_model, input_ids: torch.Tensor) -> float:
    ours = engine_model(input_ids).float()  # (B, T, V)
    theirs = hf_model(input_ids=input_ids).logits.float()  # (B, T, V)
    if ours.shape != theirs.shape:
        raise ValidationFailed(f"logit shapes differ: engine {tuple(ours.shape)} vs HF {tuple(theirs.shape)}")
    return (ours - theirs).abs().max().item()


def compare(engine_model: Transformer, hf_dir: Path, vocab_size: int, seq_len: int, atol: float) -> ValidationResult:
    """Load the HF model from `hf_dir`, compare logits, raise ValidationFailed beyond `atol`."""
    hf_model = load_hf_model(hf_dir)
    input_ids = random_tokens(vocab_size, seq_len=seq_len)
    diff = max_logit_difference(engine_model, hf_model, input_ids)
    shape = "x".join(map(str, input_ids.shape))
    if not diff <= atol:  # also catches NaN
        raise ValidationFailed(f"validation failed: max |logit difference| = {diff:.3g} on random tokens "
                               f"({shape}) exceeds {atol:g}")
    return ValidationResult(diff, f"validation: max |logit difference| = {diff:.3g} on random tokens "
                                  f"({shape}, float32), tolerance {atol:g}")
