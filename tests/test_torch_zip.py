"""torch.save files read without torch (moelab.imports.torch_zip): the same values as torch.load, or Unsupported."""

import subprocess
import sys
from collections import OrderedDict

import numpy as np
import pytest
import torch

from moelab.imports import torch_zip
from moelab.imports.loaders import torch_load


def same(ours, theirs):
    if isinstance(theirs, torch.Tensor):
        assert isinstance(ours, np.ndarray) and not ours.flags.writeable, type(ours)
        assert ours.shape == tuple(theirs.shape) and ours.dtype == theirs.numpy().dtype
        assert np.array_equal(ours, theirs.numpy())
    elif isinstance(theirs, dict):
        assert type(ours) is type(theirs) and list(ours) == list(theirs)
        for k in theirs:
            same(ours[k], theirs[k])
    elif isinstance(theirs, (list, tuple)):
        assert type(ours) is type(theirs) and len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            same(a, b)
    else:
        assert ours == theirs and type(ours) is type(theirs)


def test_plain_data_and_tensors_of_every_numpy_dtype_read_as_torch_reads_them(tmp_path):
    base = torch.arange(24, dtype=torch.float64)
    obj = {
        "records": [{"rank": 1, "forward_pass_id": 7, "count": torch.arange(12, dtype=torch.int32).reshape(3, 4)}],
        "views": [base[3:9], base[::5], base.reshape(4, 6)[:, 1:4].t(), base[5]],  # one shared storage
        "empty": torch.zeros(0, 3), "map": torch.tensor([[0, 2, 1, 1]]),
        "ordered": OrderedDict(half=torch.ones(3, dtype=torch.float16)),
        "kinds": [torch.tensor([True, False]), torch.tensor([-1, 2], dtype=torch.int8),
                  torch.tensor([200], dtype=torch.uint8), torch.tensor([3], dtype=torch.int16)],
        "meta": {"name": "dump", "ratio": 0.5, "none": None, "pair": (1, 2)},
    }
    path = tmp_path / "d.pt"
    torch.save(obj, path)
    same(torch_zip.read(path), torch.load(path, weights_only=True))


@pytest.mark.parametrize("case", ["bfloat16", "parameter", "legacy format"])
def test_what_it_does_not_map_is_unsupported_and_torch_load_reads_it(tmp_path, case):
    path = tmp_path / "d.pt"
    if case == "bfloat16":  # numpy has no bfloat16
        torch.save({"x": torch.ones(2, dtype=torch.bfloat16)}, path)
    elif case == "parameter":  # another class than a plain tensor
        torch.save({"x": torch.nn.Parameter(torch.ones(2))}, path)
    else:
        torch.save({"x": torch.ones(2)}, path, _use_new_zipfile_serialization=False)
    with pytest.raises(Exception) as exc:
        torch_zip.read(path)
    assert exc.type in (torch_zip.Unsupported, torch_zip.zipfile.BadZipFile), exc.value
    got = torch_load(path, mmap=True)  # torch reads it instead
    assert isinstance(got["x"], torch.Tensor) and torch.equal(got["x"].float(), torch.ones(2))


def test_a_dumps_checks_do_not_import_torch(tmp_path):
    """The point of it: the checks run in every Snakemake process, and importing torch takes seconds."""
    path = tmp_path / "dump.pt"
    torch.save({"records": [{"rank": 0, "forward_pass_id": 0, "global_physical_count": torch.ones(2, 4)}],
                "last_physical_to_logical_map": torch.tensor([[0, 1, 2, 3], [0, 1, 2, 3]])}, path)
    code = ("import sys\nfrom moelab.imports.loaders import torch_load\n"
            "from pathlib import Path\n"
            f"d = torch_load(Path({str(path)!r}), mmap=True)\n"
            "assert d['records'][0]['global_physical_count'].sum() == 8\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_a_truncated_file_still_says_so(tmp_path):
    path = tmp_path / "cut.pt"
    torch.save({"x": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:2000])
    with pytest.raises(Exception, match="truncated or corrupt"):
        torch_load(path, mmap=True)
