"""dataset.instances = packed on real text prepared here (the engine's Python sources): no
instance holds part of a document that continues elsewhere, every token is packed exactly
once, and the loss ignores the padding."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from engine.data.datasets import PackedDocuments, document_spans, pack_best_fit
from engine.data.loader import build_train_loader
from engine.data.prepare import main_prepare
from engine.data.token_source import TokenFiles
from engine.data.tokenizer import BYTE_EOS_ID, BYTE_PAD_ID

from tiny_run import small_config

REPO = Path(__file__).resolve().parents[2]
T = 2048  # a quarter of the engine's files fit whole, the rest are split into pieces


@pytest.fixture(scope="module")
def code(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("packed") / "code.npy"
    assert main_prepare([str(REPO / "engine" / "**" / "*.py"), "-o", str(path)]) == 0
    return path


def _segments(row_ids: np.ndarray, row_docs: np.ndarray) -> list:
    return [row_ids[row_docs == d] for d in range(int(row_docs.max()) + 1)] if (row_docs >= 0).any() else []


def test_packed_instances_never_cross_a_document_boundary(code):
    source = TokenFiles([code], "uint16")
    packed = PackedDocuments(source, T, BYTE_EOS_ID, BYTE_PAD_ID)
    batch = packed.get_batch(np.arange(len(packed)))
    ids, mask, docs = batch["input_ids"], batch["label_mask"], batch["doc_ids"]
    assert ids.shape == (len(packed), T) and (ids[~mask] == BYTE_PAD_ID).all() and (ids[mask] != BYTE_PAD_ID).all()
    starts, lengths = document_spans(source, BYTE_EOS_ID)
    documents = {source.read(s, s + n).tobytes() for s, n in zip(starts, lengths, strict=True) if n <= T}
    long_docs = [source.read(s, s + n) for s, n in zip(starts, lengths, strict=True) if n > T]
    assert long_docs and len(documents) > 20  # the data has both kinds
    seen = 0
    for row in range(len(packed)):
        segments = _segments(ids[row], docs[row])
        assert np.array_equal(np.flatnonzero(mask[row]), np.arange(sum(map(len, segments))))  # padding last
        for segment in segments:
            seen += len(segment)
            eos = np.flatnonzero(segment == BYTE_EOS_ID)
            if segment.astype(np.uint16).tobytes() in documents:  # a whole document, its EOS last
                assert eos.tolist() == [len(segment) - 1]
            else:  # a piece of a longer document: alone in its row unless it is the last piece
                assert any(_is_piece(segment, doc) for doc in long_docs)
                assert len(segments) == 1 or eos.tolist() == [len(segment) - 1]
    assert seen == source.num_tokens == packed.fill.sum()  # every token packed exactly once
    assert packed.fill.mean() > 0.9 * T  # best-fit decreasing packs tightly


def _is_piece(segment: np.ndarray, document: np.ndarray) -> bool:
    """segment is document[k*T : k*T + len] for some k (how long documents are split)."""
    return any(np.array_equal(document[k:k + len(segment)], segment) for k in range(0, len(document), T))


def test_best_fit_decreasing_fills_the_tightest_open_instance():
    # longest first: 5 opens #0 (3 left), 4 opens #1 (4 left); the first 3 fits both and takes
    # the tighter #0 (0 left), the next 3 goes to #1 (1 left); 2 fits nowhere and opens #2.
    assert pack_best_fit(np.array([3, 5, 4, 3, 2]), 8).tolist() == [0, 0, 1, 1, 2]
    assert pack_best_fit(np.array([6, 2, 5, 3]), 8).tolist() == [0, 0, 1, 1]  # 2 joins 6, 3 joins 5


def test_loss_ignores_the_padding(code):
    from engine.train_module.train_module import TrainModule

    cfg = small_config("--dataset.kind=numpy", f"--dataset.paths={code}", "--dataset.instances=packed",
                       "--dataset.sequence_length=512", "--train_module.max_sequence_length=512",
                       "--data_loader.global_batch_size=2048", "--train_module.rank_microbatch_size=1024")
    packed = build_train_loader(cfg, 0, 1).instances
    least_filled = np.argsort(packed.fill, kind="stable")[:4]  # the instances with the most padding
    batch = {key: torch.from_numpy(value) for key, value in packed.get_batch(least_filled).items()}
    assert not batch["label_mask"].all()  # there is padding to ignore
    module = TrainModule(cfg, torch.device("cpu"))
    loss, count = module.eval_batch(batch)
    # labels: a position predicts the next token only where that token is data
    assert count == (batch["label_mask"][:, 1:]).sum()
    garbage = batch["input_ids"].clone()
    garbage[~batch["label_mask"]] = torch.randint(0, 256, (int((~batch["label_mask"]).sum()),))
    loss2, count2 = module.eval_batch({**batch, "input_ids": garbage})
    assert torch.equal(count, count2) and torch.allclose(loss, loss2)  # padding sits after the data (causal)


def test_document_mask_reaches_the_model_in_training_and_evaluation(code):
    from engine.train_module.train_module import TrainModule

    cfg = small_config("--dataset.kind=numpy", f"--dataset.paths={code}", "--dataset.instances=packed",
                       "--dataset.document_mask=true", "--dataset.sequence_length=512",
                       "--train_module.max_sequence_length=512", "--data_loader.global_batch_size=2048",
                       "--train_module.rank_microbatch_size=1024")
    packed = build_train_loader(cfg, 0, 1).instances
    most_documents = np.argsort(-(packed.offsets[1:] - packed.offsets[:-1]), kind="stable")[:4]
    batch = {key: torch.from_numpy(value) for key, value in packed.get_batch(most_documents).items()}
    assert int(batch["doc_ids"].max()) >= 1  # rows with several documents
    module = TrainModule(cfg, torch.device("cpu"))
    masked, _ = module.eval_batch(batch)
    plain, _ = module.eval_batch({k: v for k, v in batch.items() if k != "doc_ids"})
    # later documents no longer see earlier ones (a small change at init, but a change: the same
    # computation without the mask is bit-identical run to run)
    assert masked != plain and torch.equal(plain, module.eval_batch({"input_ids": batch["input_ids"],
                                                                      "label_mask": batch["label_mask"]})[0])
    without = {k: v for k, v in batch.items() if k != "doc_ids"}
    trained = [module.train_batch(b)["ce_loss"] for b in (batch, without)]  # no optimizer step between
    assert torch.isfinite(trained[0]) and trained[0] != trained[1]
