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
        items = sorted(((share[e], e) for e in range(experts) for _ in range(copies[e])), key=lambda x: (-x[0], x[1]))
        device_load = np.zeros(n_device)
        filled = np.zeros(n_device, dtype=np.int64)
        for weight, expert in items:
            open_slots = [d for d in range(n_device) if filled[d] < slots]
            free = [d for d in open_slots if expert not in table[layer, d, :filled[d]]] or open_slots
            d = min(free, key=lambda x: (device_load[x], x))
            table[layer, d, filled[d]] = expert
            filled[d] += 1
            device_load[d] += weight
    return True, np.arange(layers), table, None
