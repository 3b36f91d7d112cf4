import polars as pl

from moelab import provenance
from moelab.traces import TraceMeta


def test_rows_name_each_source_once_with_its_device_unless_synthetic():
    frame = pl.DataFrame({"trace": ["proxy-tiny", "captured-tiny", "captured-tiny", "powerlaw-E8-k2"],
                          "source_kind": ["proxy", "captured", "captured", "synthetic"],
                          "capture_device": ["cpu", "cuda", "cuda", None]})
    assert (provenance.of_rows(frame, "trace", "source_kind", "capture_device")
            == "captured-tiny (captured on cuda), powerlaw-E8-k2 (synthetic), proxy-tiny (proxy on cpu)")
    assert provenance.of_rows(frame) == "captured-tiny (captured); powerlaw-E8-k2 (synthetic); proxy-tiny (proxy)"


def test_measurements_name_the_device_scale_and_recorded_rows():
    frame = pl.DataFrame({"device_kind": ["cpu", "cuda"], "device_name": ["x86", "H200"],
                          "provenance": ["regenerated", "recorded/h200"], "scale": [8, 1],
                          "source_kind": ["synthetic", "captured"], "trace": ["powerlaw-E8-k2", "captured-tiny"]})
    assert provenance.of_measurements(frame) == ("cpu x86 (hidden, ffn / 8); cuda H200, recorded/h200 | traces "
                                                 "captured: captured-tiny; synthetic: powerlaw-E8-k2")


def test_a_trace_says_how_it_was_made():
    meta = TraceMeta.__new__(TraceMeta)
    for k, v in dict(source_kind="captured", source_id="tiny", num_experts=32, top_k=8, capture_device="cpu",
                     capture_dtype="float32", domains=["code", "prose"],
                     config={"path": "results/models/tiny", "model_type": "olmoe"}).items():
        object.__setattr__(meta, k, v)
    assert provenance.of_trace(meta) == ("captured from results/models/tiny (olmoe, E=32, k=8) on cpu, float32; "
                                         "corpus domains: code, prose")
    object.__setattr__(meta, "source_kind", "synthetic")
    assert provenance.of_trace(meta) == "synthetic scenario tiny, generated on CPU"
