"""Routing strategies, capacity factor and routed adapters.

- ``dispatch``: capacity, token dropping, pack/combine (and the per-expert loop they are measured against);
- ``routers``: the ``Router`` module (every strategy, three router architectures) and the balancing loss;
- ``model``: the tiny MoE language model of the training study;
- ``capacity_sweep``: drop rates vs capacity factor on gaussian logits, synthetic and captured traces;
- ``study``: the training study (strategy x capacity factor x seed);
- ``significance``: Welch's t-test per pair of strategies, Holm's correction over the table;
- ``plots``: the study's figures.
"""
