from dataclasses import dataclass

import pytest

from moelab.spec import ConfigError, ConfigSpec


@dataclass(frozen=True)
class Block(ConfigSpec):
    key = "stage.block"
    sizes: tuple[int, ...]
    rate: float = 1.0

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate={self.rate} must be positive")


def test_a_block_becomes_a_frozen_spec_and_back():
    spec = Block.from_config({"sizes": [2, 4], "rate": 0.5})
    assert spec.sizes == (2, 4) and spec.to_config() == {"sizes": [2, 4], "rate": 0.5}
    with pytest.raises(Exception):
        spec.rate = 2.0


@pytest.mark.parametrize("block, message", [
    ({"sizes": [1], "rte": 2}, r"stage.block: unknown keys \['rte'\]"),
    ({"rate": 2}, r"stage.block: missing keys \['sizes'\]"),
    ({"sizes": [1], "rate": -1}, r"stage.block: rate=-1 must be positive"),
    (None, r"stage.block: expected a mapping"),
])
def test_bad_blocks_name_the_key(block, message):
    with pytest.raises(ConfigError, match=message):
        Block.from_config(block)
