"""Token windows over a tokenised corpus: the batches the embedded checkpoint, the routing study and
PERFT train and evaluate on.

A corpus part's documents are tokenised and joined by the end-of-text token (:func:`token_ids`); a batch is
``[batch, seq_len]`` consecutive tokens from seeded start positions (:func:`windows`).
"""

from __future__ import annotations

import numpy as np
import polars as pl

SPECIAL = "<|endoftext|>"


def token_ids(corpus: pl.DataFrame, tokenizer, part: str) -> np.ndarray:  # noqa: ANN001
    """All documents of one ``part`` tokenised and joined by the end-of-text token."""
    eos = tokenizer.convert_tokens_to_ids(SPECIAL)
    texts = corpus.filter(pl.col("part") == part).get_column("text").to_list()
    if not texts:
        raise ValueError(f"the corpus has no {part!r} documents")
    out: list[int] = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        out.extend(ids)
        out.append(eos)
    return np.asarray(out, dtype=np.int64)


def windows(ids: np.ndarray, starts: np.ndarray, seq_len: int):  # noqa: ANN201 - a torch tensor
    """``[len(starts), seq_len]`` token windows of ``ids`` (the training and evaluation batches)."""
    import torch

    idx = starts[:, None] + np.arange(seq_len)[None, :]
    return torch.from_numpy(ids[idx])
