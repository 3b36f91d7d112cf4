"""The strategy and router-architecture names (no torch import: the config check reads them)."""

STRATEGIES = ("top1", "topk_hard", "softk", "noisy_topk", "hash", "hash_position", "expert_choice", "aux_free")
ARCHS = ("linear", "mlp", "mlp_hadamard")
LEARNED_TOKEN_CHOICE = ("top1", "topk_hard", "softk", "noisy_topk")  # the balancing loss applies to these
