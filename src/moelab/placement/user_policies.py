"""Users' own dynamic placement policies (config ``placement.policies``), run like moelab's and DS-EPLB.

An entry is ``{name, path, api}`` (and optionally ``class`` and ``seconds_per_call``). ``api`` is one of:

- ``competition``: ``path`` defines ``rebalance(hotness, n_device, n_red_expert)``, the placement competition's
  API: the window ``[w, L, E]`` float64 (zeros already 1), returning ``(change, priority, table)`` or, as the
  competition's template does, ``(change, priority, table, aux)``; ``table`` is ``[L, D, (E + n_red) / D]``
  logical ids. A module-level ``reset()`` is called before each run, when the file has one;
- ``vllm``: ``path`` defines a class with vLLM's ``rebalance_experts(weight, num_replicas, num_groups,
  num_nodes, num_ranks, old_global_expert_indices)``: ``weight`` int64 ``[L, E]`` (the window summed),
  ``old_global_expert_indices`` the physical-to-logical map in service ``[L, num_replicas]``, as torch tensors;
  it returns the new map (a tensor, or a tuple whose first element it is, as vLLM's own policy returns).

The file is parsed (never run) when the config is checked, so a missing file or entry point stops the run
before any job. In a job, every call's answer is checked before it is used: a policy that raises, returns a
table of the wrong shape, an id outside ``0..E-1``, NaN, or a layer that holds no copy of some expert stops
the job with the policy's name, the call and the layer (:class:`UserPolicyError`), and the job writes nothing.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moelab.placement import competition
from moelab.placement import simulator as sim
from moelab.spec import ConfigError, ConfigSpec

APIS = ("competition", "vllm")
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # part of file names (results/placement/grid-policies/<name>)


class UserPolicyError(ValueError):
    """A user's policy failed or answered something no engine could load."""


@dataclass(frozen=True)
class UserPolicySpec(ConfigSpec):
    """One ``placement.policies[]`` entry. ``cls``: the class for ``api: vllm`` (config key ``class``; default:
    the file's one class with ``rebalance_experts``). ``seconds_per_call``: the modelled time of one call that
    delays its redeployment in the deterministic tables (default: DS-EPLB's configured time at the same EP
    size); the tables under ``results/bench/`` charge its measured time, as the competition does."""

    key = "placement.policies[]"
    name: str
    path: str
    api: str
    cls: str | None = None
    seconds_per_call: float | None = None

    @classmethod
    def from_config(cls, block: Mapping[str, Any] | None, key: str | None = None) -> UserPolicySpec:
        block = dict(block or {})
        if "class" in block:
            block["cls"] = block.pop("class")
        return super().from_config(block, key)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME.match(self.name):
            raise ValueError(f"name: {self.name!r} must match {NAME.pattern} (it names the policy's files)")
        if self.api not in APIS:
            raise ValueError(f"api: {self.api!r}, expected one of {', '.join(APIS)}")
        if not isinstance(self.path, str) or not self.path.endswith(".py"):
            raise ValueError(f"path: {self.path!r}, expected a Python file (.py)")
        if self.cls is not None and self.api != "vllm":
            raise ValueError("class: only for api: vllm (a competition file defines rebalance)")
        s = self.seconds_per_call
        if s is not None and (isinstance(s, bool) or not isinstance(s, (int, float)) or s < 0):
            raise ValueError(f"seconds_per_call: {s!r}, expected seconds >= 0")

    @property
    def where(self) -> str:
        return f"placement.policies.{self.name} ({self.path})"

    def check_file(self) -> None:
        """The file exists and defines the entry point, read with ``ast`` (the user's code is not run)."""
        path = Path(self.path)
        if not path.is_file():
            raise ConfigError(f"{self.where}: no such file")
        try:
            tree = ast.parse(path.read_text(), str(path))
        except (SyntaxError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{self.where}: not valid Python ({exc})") from None
        if self.api == "competition":
            if not any(isinstance(n, ast.FunctionDef) and n.name == "rebalance" for n in tree.body):
                raise ConfigError(f"{self.where}: defines no function rebalance(hotness, n_device, n_red_expert) "
                                  f"(api: competition)")
            return
        self.class_name(tree)

    def class_name(self, tree: ast.Module | None = None) -> str:
        """The vLLM policy class: ``cls``, or the file's one class with a ``rebalance_experts`` method."""
        tree = tree or ast.parse(Path(self.path).read_text(), self.path)
        found = [n.name for n in tree.body if isinstance(n, ast.ClassDef)
                 and any(isinstance(m, ast.FunctionDef) and m.name == "rebalance_experts" for m in n.body)]
        if self.cls is not None:
            if self.cls not in found:
                raise ConfigError(f"{self.where}: class: no class {self.cls!r} with rebalance_experts in the file "
                                  f"(found {found or 'none'})")
            return self.cls
        if len(found) != 1:
            raise ConfigError(f"{self.where}: expected one class with rebalance_experts, found {found or 'none'}: "
                              f"name it with the key class")
        return found[0]

    def load(self) -> Any:
        """The module (``competition``) or the class (``vllm``), imported from ``path``."""
        name = f"moelab_user_policy_{self.name}"
        spec = importlib.util.spec_from_file_location(name, self.path)
        if spec is None or spec.loader is None:
            raise UserPolicyError(f"{self.where}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - anything the user's module raises at import
            raise UserPolicyError(f"{self.where}: importing it raised {type(exc).__name__}: {exc}") from exc
        return module if self.api == "competition" else getattr(module, self.class_name())


def policy_specs(block: Sequence[Mapping[str, Any]] | None, reserved: Sequence[str] = ()) -> list[UserPolicySpec]:
    """Every ``placement.policies`` entry, checked (names unique and not a built-in policy's)."""
    out, seen = [], set()
    for n, entry in enumerate(block or []):
        spec = UserPolicySpec.from_config(entry, f"placement.policies[{n}]")
        if spec.name in seen or spec.name in reserved:
            raise ConfigError(f"placement.policies[{n}].name: {spec.name!r} is "
                              + ("used twice" if spec.name in seen else "a built-in policy's name"))
        seen.add(spec.name)
        out.append(spec)
    return out


def checked_table(raw: Any, shape: tuple[int, int, int], experts: int, where: str) -> np.ndarray:
    """A policy's answer as int64 tables ``[L, D, S]``, or an error naming what is wrong and the layer."""
    try:
        a = np.asarray(raw.detach().cpu().numpy() if hasattr(raw, "detach") else raw)
    except Exception as exc:  # noqa: BLE001 - anything that is not array-like
        raise UserPolicyError(f"{where}: returned {type(raw).__name__}, not an array ({exc})") from None
    L, D, S = shape
    if a.size != L * D * S or a.dtype.kind not in "iuf":
        raise UserPolicyError(f"{where}: returned a placement of shape {a.shape} dtype {a.dtype}; expected "
                              f"{L} layers x {D} devices x {S} slots ({L} x {D * S}) of expert ids")
    a = a.reshape(L, D * S)
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            layer, slot = np.argwhere(bad)[0].tolist()
            raise UserPolicyError(f"{where}: layer {layer}: slot {slot} holds {a[layer, slot]}, not an expert id")
    a = a.astype(np.int64)
    out = (a < 0) | (a >= experts)
    if out.any():
        layer, slot = np.argwhere(out)[0].tolist()
        raise UserPolicyError(f"{where}: layer {layer}: slot {slot} holds {a[layer, slot]}, outside 0..{experts - 1}")
    for layer, row in enumerate(a):
        missing = np.flatnonzero(np.bincount(row, minlength=experts) == 0)
        if missing.size:
            raise UserPolicyError(f"{where}: layer {layer}: no slot holds expert(s) {missing[:8].tolist()}; every "
                                  f"expert needs a copy (its tokens would have nowhere to go)")
    return a.reshape(L, D, S)


class Runner:
    """One user policy bound to a shape: ``devices`` x ``slots`` slots per layer, ``experts`` experts. It keeps
    the count of calls (for errors) and, for a vLLM class, the map in service. ``competition(window)`` answers as
    the competition's loop expects; ``simulator(window, current)`` as moelab's simulator does."""

    def __init__(self, spec: UserPolicySpec, loaded: Any, devices: int, slots: int, layers: int, experts: int):
        self.spec, self.loaded = spec, loaded
        self.shape = (layers, devices, slots)
        self.experts = experts
        self.calls = 0
        self.current = self._initial()

    def _initial(self) -> np.ndarray:
        """The competition's starting tables for this shape (a redundant slot per device when there is one)."""
        L, D, S = self.shape
        return competition.initial_tables(L, self.experts, D, S > self.experts // D)

    def reset(self, initial: np.ndarray | None = None) -> None:
        """Before a run: the call count, the map in service, and the user's ``reset()`` when it has one."""
        self.calls = 0
        self.current = self._initial() if initial is None else np.asarray(initial)
        if self.spec.api == "competition" and callable(getattr(self.loaded, "reset", None)):
            self.loaded.reset()

    def _call(self, window: np.ndarray) -> tuple[bool, list[int], np.ndarray]:
        self.calls += 1
        where = f"{self.spec.where}: call {self.calls}"
        L, D, S = self.shape
        try:
            if self.spec.api == "competition":
                out = self.loaded.rebalance(window.copy(), D, D * S - self.experts)
            else:
                out = self._vllm(window)
        except UserPolicyError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the user's code raises
            raise UserPolicyError(f"{where}: raised {type(exc).__name__}: {exc}") from exc
        if self.spec.api == "vllm":
            return True, list(range(L)), checked_table(out, self.shape, self.experts, where)
        if not isinstance(out, tuple) or len(out) not in (3, 4):
            raise UserPolicyError(f"{where}: returned {type(out).__name__}; expected (change, priority, table"
                                  f"[, aux])")
        change, priority, table = out[:3]
        if not change:
            return False, [], self.current
        try:
            order = [int(x) for x in np.asarray(priority).ravel()]
        except (TypeError, ValueError):
            raise UserPolicyError(f"{where}: priority {priority!r} is not a list of layer indices") from None
        bad = [x for x in order if not 0 <= x < L]
        if bad:
            raise UserPolicyError(f"{where}: priority names layer(s) {bad[:8]}, outside 0..{L - 1}")
        return True, order, checked_table(table, self.shape, self.experts, where)

    def _vllm(self, window: np.ndarray) -> Any:
        import torch

        L, D, S = self.shape
        weight = torch.from_numpy(np.rint(window.sum(0)).astype(np.int64))
        old = np.array(self.current, dtype=np.int64).reshape(L, D * S)
        trivial = np.broadcast_to(np.arange(D * S) % self.experts, old.shape)
        old[old < 0] = trivial[old < 0]  # vLLM has no empty slot: an empty one holds its trivial expert
        out = self.loaded.rebalance_experts(weight, D * S, 1, 1, D, torch.from_numpy(old))
        return out[0] if isinstance(out, tuple) else out

    def competition(self, window: np.ndarray) -> tuple[bool, np.ndarray, np.ndarray]:
        change, order, table = self._call(window)
        if change:
            self.current = table
        return change, np.asarray(order, np.int64), table

    def simulator(self, window: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        self.current = current
        change, order, table = self._call(window)
        return (table, np.asarray(order, np.int64)) if change else (current, np.zeros(0, np.int64))


def simulate(runner: Runner, hot: np.ndarray, spec: sim.SimSpec) -> dict:
    """The policy in moelab's simulator (a serving loop at its own cadence), from the contiguous start."""
    runner.reset(sim.contiguous(hot.shape[1], hot.shape[2], spec.devices, spec.slots_per_device))
    return sim.simulate(hot, runner.simulator, spec)


def simulate_competition(runner: Runner, served: np.ndarray, interval: int, devices: int, delay,  # noqa: ANN001
                         full_layers: int | None) -> dict:
    """The policy in the competition's loop, at the evaluator's cadence."""
    runner.reset()
    return competition.simulate(served, runner.competition, interval, devices=devices, delay=delay,
                                full_layers=full_layers)
