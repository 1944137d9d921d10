"""Per-document attention (dataset.document_mask): a document packed after another gets the
same outputs as alone at the start of a row (RoPE is relative), on full-attention and
sliding-window layers; without the mask it sees the document before it. Config rules."""

from __future__ import annotations

import pytest
import torch

from engine.config import ConfigError, resolve
from engine.nn.document_mask import document_mask
from engine.nn.transformer import build_model

PAD = 257
A = [10, 11, 12, 13, 256]  # a document and its EOS
B = [40, 41, 42, 43, 44, 45, 256]


def _model(*overrides: str):
    cfg = resolve(preset="tiny-cpu", overrides=["--model.d_model=64", "--model.n_layers=2", "--model.n_heads=4",
                                                "--model.dtype=float32", *overrides])
    model = build_model(cfg.model, "cpu")
    model.init_weights(0)
    return model.eval()


@pytest.mark.parametrize("family", [[], ["--model.family=olmo3", "--model.sliding_window=4",
                                         "--model.full_attention_interval=2"]], ids=["llama", "olmo3-window"])
@torch.no_grad()
def test_a_packed_document_sees_only_itself(family):
    model = _model(*family)
    T = 16
    packed = torch.tensor([A + B + [PAD] * (T - len(A) - len(B))])
    doc_ids = torch.tensor([[0] * len(A) + [1] * len(B) + [-1] * (T - len(A) - len(B))])
    alone = torch.tensor([B + [PAD] * (T - len(B))])
    b = slice(len(A), len(A) + len(B))
    masked = model(packed, doc_ids=doc_ids)[0, b]
    reference = model(alone)[0, :len(B)]
    torch.testing.assert_close(masked, reference, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(model(packed, doc_ids=doc_ids)[0, :len(A)], model(packed)[0, :len(A)])
    assert not torch.allclose(model(packed)[0, b], reference, atol=1e-3)  # unmasked: B attends to A


def test_the_mask_is_causal_within_documents_and_keeps_every_row():
    mask = document_mask(torch.tensor([[0, 0, 1, 1, 1, -1]]), window=2)[0, 0]
    assert mask.tolist() == [
        [True, False, False, False, False, False],
        [True, True, False, False, False, False],
        [False, False, True, False, False, False],
        [False, False, True, True, False, False],
        [False, False, False, True, True, False],  # the window: itself and one before
        [False, False, False, False, False, True],  # padding attends to itself: no empty row
    ]


def test_document_mask_rules():
    with pytest.raises(ConfigError, match="per-document attention needs dataset.instances = 'packed'"):
        resolve(preset="tiny-cpu", overrides=["--dataset.document_mask=true"])
    ok = resolve(preset="tiny-cpu", overrides=["--dataset.document_mask=true", "--dataset.instances=packed"])
    assert ok.dataset.document_mask
