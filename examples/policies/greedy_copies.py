"""An example of a user's policy in the placement competition's API (config ``placement.policies``, api
``competition``): numpy only, no moelab import, as a file uploaded to the competition would be.

Per layer, over the window's summed counts: every expert gets one slot, the ``n_red_expert`` busiest experts a
second one; then copies are placed heaviest first, each on the device with the least load so far that still has a
free slot and does not hold that expert already (longest-processing-time packing). Every layer is redeployed, in
index order, at every call.
"""

import numpy as np


def rebalance(hotness, n_device, n_red_expert):
    load = np.asarray(hotness, dtype=np.float64).sum(axis=0)  # [layers, experts]
    layers, experts = load.shape
    slots = (experts + n_red_expert) // n_device
    table = np.empty((layers, n_device, slots), dtype=np.int64)
    for layer in range(layers):
        copies = np.ones(experts, dtype=np.int64)
        copies[np.argsort(-load[layer], kind="stable")[:n_red_expert]] += 1
        share = load[layer] / copies
        items = np.repeat(np.arange(experts), copies)
        items = items[np.lexsort((items, -share[items]))]  # heaviest copy first, ties by expert id
        device_load = np.zeros(n_device)
        filled = np.zeros(n_device, dtype=np.int64)
        holds = np.zeros((n_device, experts), dtype=bool)
        for expert in items:
            open_slots = filled < slots
            free = open_slots & ~holds[:, expert]
            if not free.any():
                free = open_slots  # only devices holding it have room left: a second copy there
            candidates = np.flatnonzero(free)
            d = candidates[np.argmin(device_load[candidates])]  # the least loaded, the lowest index on a tie
            table[layer, d, filled[d]] = expert
            filled[d] += 1
            holds[d, expert] = True
            device_load[d] += share[expert]
    return True, np.arange(layers), table, None
