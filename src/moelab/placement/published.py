"""Published dynamic-placement figures that the hotness model is calibrated on and judged against.

Source: the MoE placement competition's documentation (huawei-cpl-zurich/moe-competition-docs),
baseline table for DeepSeek-R1 on its ShareGPT trace: mean PAR over the trace and transmit (slots whose
expert changed), one redundant slot per device, DS-EPLB the global policy. ``docs/stages/placement.md``
explains which cells the model is fitted on and which it must predict.
"""

from __future__ import annotations

from dataclasses import dataclass

SOURCE = "MoE placement competition documentation, DS-R1 ShareGPT baseline table"


@dataclass(frozen=True)
class Cell:
    name: str
    policy: str  # "Default" or "DS-EPLB"
    ep: int
    interval: int | None  # DS-EPLB's call interval (iterations); None for Default
    metric: str  # "mean_par" or "transmit"
    published: float
    role: str  # "fit" (the calibration may use it) or "predicted" (held out)


# DS-R1: 58 MoE layers x 256 routed experts, top-8
DS_R1 = {"layers": 58, "experts": 256, "top_k": 8}

# The public sample traces' lengths in iterations, by the model's MoE layers, from their file sizes (float32,
# a 128-byte .npy header): DS-R1 364,904,576 bytes = 6,144 x 58 x 256 x 4 + 128; Qwen3 246,415,488 bytes =
# 5,120 x 94 x 128 x 4 + 128. The competition does not tell a submission the length; these stand in for it.
TRACE_ITERATIONS = {58: 6144, 94: 5120}

DS_R1_SHAREGPT = (
    Cell("Default PAR, EP32", "Default", 32, None, "mean_par", 1.6436, "fit"),
    Cell("DS-EPLB@1024 PAR, EP32", "DS-EPLB", 32, 1024, "mean_par", 1.2570, "fit"),
    Cell("DS-EPLB@1024 transmit, EP32", "DS-EPLB", 32, 1024, "transmit", 82_350, "fit"),
    Cell("DS-EPLB@256 PAR, EP32", "DS-EPLB", 32, 256, "mean_par", 1.1742, "predicted"),
    Cell("DS-EPLB@256 transmit, EP32", "DS-EPLB", 32, 256, "transmit", 312_336, "predicted"),
    Cell("DS-EPLB@2048 PAR, EP32", "DS-EPLB", 32, 2048, "mean_par", 1.3158, "predicted"),
    Cell("DS-EPLB@2048 transmit, EP32", "DS-EPLB", 32, 2048, "transmit", 32_681, "predicted"),
    Cell("DS-EPLB@1024 PAR, EP256", "DS-EPLB", 256, 1024, "mean_par", 2.1794, "predicted"),
)
