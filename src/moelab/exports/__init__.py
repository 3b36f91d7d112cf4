"""Placements in the files serving engines load, and the sequence of redeployments (``docs/stages/exports.md``).

Every engine takes the same object: a physical-to-logical map ``[layers, physical experts]`` whose
physical slots are numbered GPU by GPU (GPU = physical id // slots per GPU), every slot holding one
logical expert. moelab's deployments are tables ``[L, D, S]`` of logical ids (-1 = an empty slot), so a
full deployment is such a map once each layer's table is read row by row; a static placement (a device
per expert) becomes one by listing each device's experts in ascending id.

- :mod:`~moelab.exports.maps`: building the map, the engines' constraints (:func:`check`), :class:`ExportError`;
- :mod:`~moelab.exports.sglang`: JSON ``{"physical_to_logical_map": [[...], ...]}`` for ``--init-expert-location``;
- :mod:`~moelab.exports.trtllm`: the ``MoeLoadBalancerConfig`` YAML (``num_slots``, ``initial_global_assignments``,
  ``layer_updates_per_iter``);
- :mod:`~moelab.exports.vllm`: no file input upstream; a ``torch.save``'d int64 tensor of its in-memory map;
- :mod:`~moelab.exports.redeployments`: JSON lines, a header with the initial map, then one line per layer switch;
- :mod:`~moelab.exports.placements`: the pipeline's static and dynamic placements written as those files (not
  re-exported here: it needs polars).

Writers check the engines' constraints before writing, write atomically and byte-for-byte deterministically.
Readers check what they read and name the file and the field. The formats' functions are re-exported here.
"""

from __future__ import annotations

from moelab.exports.maps import (ExportError, PathLike, check, from_static, logical_to_physical,
                                 physical_to_logical)
from moelab.exports.redeployments import (REDEPLOYMENTS_FORMAT, REDEPLOYMENTS_VERSION, Change, read_redeployments,
                                          replay, write_redeployments)
from moelab.exports.sglang import read_sglang, write_sglang
from moelab.exports.trtllm import read_trtllm, write_trtllm
from moelab.exports.vllm import read_vllm, write_vllm

__all__ = ["REDEPLOYMENTS_FORMAT", "REDEPLOYMENTS_VERSION", "Change", "ExportError", "PathLike", "check",
           "from_static", "logical_to_physical", "physical_to_logical", "read_redeployments", "read_sglang",
           "read_trtllm", "read_vllm", "replay", "write_redeployments", "write_sglang", "write_trtllm", "write_vllm"]
