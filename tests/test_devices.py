import pytest
import torch

from moelab.devices import DeviceError, resolve_device


def test_auto_is_cuda_only_where_torch_sees_a_gpu():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_names_the_config_key():
    with pytest.raises(DeviceError, match=r"kernels.device='cuda:1'.*no CUDA device"):
        resolve_device("cuda:1", "kernels.device")


def test_an_unknown_device_is_refused():
    with pytest.raises(DeviceError, match="capture.device='tpu'"):
        resolve_device("tpu", "capture.device")
