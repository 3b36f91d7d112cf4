"""Tiny random checkpoints of every supported family, saved like real ones (tests only)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from moelab import tiny, windows

TEXT = ["The quick brown fox jumps over the lazy dog. " * 20, "def f(x):\n    return x + 1\n" * 20,
        "Permission is hereby granted, free of charge, to any person. " * 20]

FAMILIES = {
    "olmoe": dict(num_experts=8, num_experts_per_tok=2),
    "mixtral": dict(num_local_experts=8, num_experts_per_tok=2),
    "qwen2_moe": dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=16,
                      shared_expert_intermediate_size=32),
    "qwen3_moe": dict(num_experts=8, num_experts_per_tok=2, moe_intermediate_size=16, head_dim=16),
    "deepseek_v2": dict(n_routed_experts=8, num_experts_per_tok=2, n_group=4, topk_group=2,
                        topk_method="greedy", n_shared_experts=1, moe_intermediate_size=16,
                        kv_lora_rank=16, q_lora_rank=None, qk_rope_head_dim=8, qk_nope_head_dim=8,
                        v_head_dim=8, first_k_dense_replace=1, num_hidden_layers=3),
    "deepseek_v3": dict(n_routed_experts=16, num_experts_per_tok=4, n_group=4, topk_group=2,
                        n_shared_experts=1, moe_intermediate_size=16, kv_lora_rank=16, q_lora_rank=None,
                        qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8, first_k_dense_replace=1,
                        num_hidden_layers=3),
}


def tokenizer(path: Path):  # noqa: ANN201
    if not (path / "tokenizer.json").exists():
        tiny.train_tokenizer(TEXT, 300, path)
    return AutoTokenizer.from_pretrained(path)


def save_model(model_type: str, out: Path, tok_dir: Path, seed: int = 0, **overrides) -> Path:
    """Build a tiny random model of ``model_type`` from config and save it with a tokenizer."""
    tok = tokenizer(tok_dir)
    special = tok.convert_tokens_to_ids(windows.SPECIAL)
    kw = dict(vocab_size=len(tok), hidden_size=32, intermediate_size=32, num_hidden_layers=2,
              num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128,
              pad_token_id=special, bos_token_id=special, eos_token_id=special)
    kw.update(FAMILIES.get(model_type, {}))
    kw.update(overrides)
    cfg = AutoConfig.for_model(model_type, **kw)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    with torch.no_grad():  # routers start at zero in some families: give them a real shape
        for name, p in model.named_parameters():
            if name.endswith("mlp.gate.weight"):
                p.normal_(0, 1.0)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out
