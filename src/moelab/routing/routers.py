"""Routers: one PyTorch module interface for every strategy of the routing study.

``Router(dim, num_experts, top_k, strategy, arch)`` maps ``x [T, d]`` (tokens in position-major order) to a
``Routed``: the token-choice request (``experts``/``weights`` ``[T, k]``, what the strategy asked for before
capacity), the full router distribution ``probs [T, E]`` (for entropy and the balancing loss) and the
``Assignment`` at the given capacity factor (``dispatch.py``).

Strategies:

- ``top1``: argmax, weight = its softmax probability (Switch);
- ``topk_hard``: top-k, uniform weights ``1/k`` (the router learns from the balancing loss only);
- ``softk``: top-k, softmax over the k selected logits;
- ``noisy_topk``: softk on logits plus learned-scale gaussian noise while training (Shazeer et al. 2017);
- ``hash``: k distinct experts from a fixed seeded table indexed by *token id* (Roller et al. 2021);
- ``hash_position``: the reference study's variant, experts ``(position + j) mod E`` (content-agnostic);
- ``expert_choice``: each expert takes its top-C tokens of the batch (Zhou et al. 2022). It sees the whole
  batch, future positions included, so evaluation does not use it: in eval mode each expert takes every token
  whose score clears a threshold (the running mean, over training batches, of the score of the expert's C-th
  token), with slots handed out in position order. A token's routing then depends only on itself and earlier
  positions. ``batch_eval=True`` gives the leaky batch routing, for showing the difference;
- ``aux_free``: DeepSeek-V3's auxiliary-loss-free balancing: sigmoid scores, selection by score + a per-expert
  bias, weights the selected scores normalised; after each training batch the bias moves by ``bias_rate``
  towards underloaded experts (``sign(mean load - load)``). No balancing loss.

Router architectures: ``linear``, ``mlp`` (Linear-GELU-Linear), ``mlp_hadamard`` (a GLU: ``W_o (W_a x *
gelu(W_b x))``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from moelab.routing.dispatch import Assignment, assign, assign_chosen, capacity
from moelab.routing.names import ARCHS, STRATEGIES


@dataclass
class Routed:
    experts: torch.Tensor  # [T, k] requested experts, strongest first
    weights: torch.Tensor  # [T, k] requested weights
    probs: torch.Tensor  # [T, E] the full router distribution
    assignment: Assignment
    aux_loss: torch.Tensor  # the differentiable balancing loss (0 where it does not apply)

    def requested_loads(self) -> torch.Tensor:
        return torch.bincount(self.experts.reshape(-1), minlength=self.probs.shape[1])

    @property
    def drop_rate(self) -> float:
        """Share of requested pairs not served (for expert choice: of each token's top-k by score)."""
        a = self.assignment
        if a.experts.shape == self.experts.shape and torch.equal(a.experts, self.experts):
            return a.drop_rate
        served = a.keep.gather(1, self.experts)  # expert choice: columns are experts
        return float(1.0 - served.float().mean())

    @property
    def token_drop_rate(self) -> float:
        return self.assignment.token_drop_rate

    def entropy(self) -> float:
        """Mean entropy (nats) of the full router distribution over all E experts."""
        p = self.probs.detach().float()
        return float(-(p * torch.log(p.clamp_min(1e-30))).sum(dim=1).mean())


def balancing_loss(probs: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Switch/GShard load-balancing loss ``E * sum_e f_e * P_e``: ``f_e`` the share of requested pairs at
    expert e (counts, no gradient), ``P_e`` the mean router probability (the gradient flows through it).
    1 when balanced, up to E when everything goes to one expert."""
    T, E = probs.shape
    f = torch.bincount(experts.reshape(-1), minlength=E).to(probs.dtype) / experts.numel()
    return E * (f.detach() * probs.mean(dim=0)).sum()


class _Glu(nn.Module):
    def __init__(self, dim: int, num_experts: int) -> None:
        super().__init__()
        self.a = nn.Linear(dim, dim, bias=False)
        self.b = nn.Linear(dim, dim, bias=False)
        self.out = nn.Linear(dim, num_experts, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.a(x) * F.gelu(self.b(x)))


def _scorer(arch: str, dim: int, num_experts: int) -> nn.Module:
    if arch == "linear":
        return nn.Linear(dim, num_experts, bias=False)
    if arch == "mlp":
        return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, num_experts, bias=False))
    if arch == "mlp_hadamard":
        return _Glu(dim, num_experts)
    raise ValueError(f"router arch {arch!r}: expected one of {ARCHS}")


class Router(nn.Module):
    def __init__(self, dim: int, num_experts: int, top_k: int, strategy: str, arch: str = "linear", *,
                 vocab_size: int | None = None, seed: int = 0, bias_rate: float = 1e-3,
                 threshold_momentum: float = 0.9) -> None:
        super().__init__()
        if strategy not in STRATEGIES:
            raise ValueError(f"routing strategy {strategy!r}: expected one of {STRATEGIES}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"top_k={top_k} must lie in [1, num_experts={num_experts}]")
        self.strategy, self.num_experts = strategy, num_experts
        self.top_k = 1 if strategy == "top1" else top_k
        self.bias_rate, self.threshold_momentum = bias_rate, threshold_momentum
        self.batch_eval = False
        if strategy not in ("hash", "hash_position"):
            self.scorer = _scorer(arch, dim, num_experts)
        if strategy == "noisy_topk":
            self.noise = nn.Linear(dim, num_experts, bias=False)
            nn.init.zeros_(self.noise.weight)  # softplus(0) = 0.69: noise of that scale to start with
        if strategy == "hash":
            if not vocab_size:
                raise ValueError("hash routing needs vocab_size (it routes by token id)")
            g = torch.Generator().manual_seed(int(seed))
            table = torch.rand(vocab_size, num_experts, generator=g).argsort(dim=1)[:, :self.top_k]
            self.register_buffer("table", table.contiguous(), persistent=True)
        if strategy == "aux_free":
            self.register_buffer("bias", torch.zeros(num_experts))
        if strategy == "expert_choice":
            self.register_buffer("threshold", torch.full((num_experts,), float("nan")))

    def extra_repr(self) -> str:
        return f"strategy={self.strategy}, experts={self.num_experts}, top_k={self.top_k}"

    def forward(self, x: torch.Tensor, capacity_factor: float, *, token_ids: torch.Tensor | None = None,
                positions: torch.Tensor | None = None) -> Routed:
        T = x.shape[0]
        E, k, s = self.num_experts, self.top_k, self.strategy
        cap = capacity(capacity_factor, T, k, E)
        zero = x.new_zeros(())
        if s in ("hash", "hash_position"):
            if s == "hash":
                if token_ids is None:
                    raise ValueError("hash routing needs token_ids")
                experts = self.table[token_ids.reshape(-1)]
            else:
                if positions is None:
                    raise ValueError("hash_position routing needs positions")
                experts = (positions.reshape(-1, 1) + torch.arange(k, device=x.device)) % E
            weights = x.new_full((T, k), 1.0 / k)
            probs = x.new_zeros(T, E).scatter_(1, experts, 1.0 / k)
            return Routed(experts, weights, probs, assign(experts, weights, E, cap), zero)
        logits = self.scorer(x)
        if s == "aux_free":
            scores = torch.sigmoid(logits.float())
            experts = torch.topk(scores.detach() + self.bias, k, dim=1).indices
            picked = scores.gather(1, experts)
            weights = (picked / picked.sum(dim=1, keepdim=True)).to(x.dtype)
            probs = scores / scores.sum(dim=1, keepdim=True)
            routed = Routed(experts, weights, probs, assign(experts, weights, E, cap), zero)
            if self.training:
                with torch.no_grad():
                    loads = routed.requested_loads().float()
                    self.bias += self.bias_rate * torch.sign(loads.mean() - loads)
            return routed
        probs = torch.softmax(logits.float(), dim=1)
        if s == "expert_choice":
            return self._expert_choice(probs, k, cap)
        if s == "top1":
            top = torch.topk(probs, 1, dim=1)
            experts, weights = top.indices, top.values.to(x.dtype)
        else:
            noisy = logits
            if s == "noisy_topk" and self.training:
                noisy = logits + torch.randn_like(logits) * F.softplus(self.noise(x))
            top = torch.topk(noisy, k, dim=1)
            experts = top.indices
            if s == "topk_hard":
                weights = x.new_full((T, k), 1.0 / k)
            else:
                weights = torch.softmax(top.values.float(), dim=1).to(x.dtype)
        routed = Routed(experts, weights, probs, assign(experts, weights, E, cap), zero)
        routed.aux_loss = balancing_loss(probs, experts)
        return routed

    def _expert_choice(self, probs: torch.Tensor, k: int, cap: int) -> Routed:
        T, E = probs.shape
        requested = torch.topk(probs.detach(), k, dim=1).indices
        take = min(cap, T)
        if self.training or self.batch_eval:
            top = torch.topk(probs.detach(), take, dim=0)  # [take, E]: each expert's best tokens
            chosen = torch.zeros(T, E, dtype=torch.bool, device=probs.device)
            chosen.scatter_(0, top.indices, True)
            if self.training:
                with torch.no_grad():
                    kth = top.values[-1]
                    m = self.threshold_momentum
                    fresh = torch.isnan(self.threshold)
                    self.threshold.copy_(torch.where(fresh, kth, m * self.threshold + (1 - m) * kth))
        else:
            if torch.isnan(self.threshold).any():
                raise RuntimeError("expert_choice: causal evaluation needs thresholds from training batches "
                                   "(train first, or set batch_eval=True for the leaky batch routing)")
            chosen = probs.detach() >= self.threshold
        a = assign_chosen(chosen, probs.to(probs.dtype), E, cap)
        return Routed(requested, probs.gather(1, requested), probs, a, probs.new_zeros(()))
