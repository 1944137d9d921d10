"""Per-document attention inside a packed instance (dataset.document_mask).

A packed instance (engine/data/datasets.py: PackedDocuments) holds several whole documents;
with plain causal attention each one also sees the documents packed before it. The mask here
lets a token attend only to earlier tokens of its own document (and, on a sliding-window
layer, only within the window):

    mask[b, 0, q, k] = doc[b, q] == doc[b, k]  and  k <= q  [and  k > q - window]

doc_ids are the loader's (0, 1, ... per document of the row, -1 on the padding), so padding
attends to padding: every row of the mask keeps its diagonal and no softmax row is empty.
RoPE needs no change: attention scores depend only on relative positions, so a document's
outputs are those it would have alone at the start of a row (tests/engine/test_document_mask.py).

The mask is a (B, 1, T, T) boolean tensor for SDPA's masked kernels (the memory-efficient one
on CUDA, the math one on CPU): O(T^2) memory per row, fine for the sequence lengths packing is
used with; the FlexAttention and varlen-flash paths that skip masked tiles are not wired here.
"""

from __future__ import annotations

from typing import Optional

import torch


def document_mask(doc_ids: torch.Tensor, window: Optional[int] = None) -> torch.Tensor:
    """doc_ids (B, T) long -> (B, 1, T, T) bool, True = attend."""
    T = doc_ids.shape[1]
    q = torch.arange(T, device=doc_ids.device)[:, None]
    k = torch.arange(T, device=doc_ids.device)[None, :]
    allowed = k <= q if window is None else (k <= q) & (k > q - window)  # (T, T)
    same = doc_ids[:, :, None] == doc_ids[:, None, :]  # (B, T, T)
    return (same & allowed)[:, None]
