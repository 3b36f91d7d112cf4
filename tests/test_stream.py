import numpy as np
import pytest

from moelab.stream import schedule, synthetic_stream


def test_schedule_replaces_finished_requests_in_order():
    s = schedule(np.array([2, 3, 1, 4, 5, 6]), concurrency=2, iterations=4)
    # slot 0: req0 (it 0-1), req2 (it 2), req3 (it 3..); slot 1: req1 (it 0-2), req4 (it 3..)
    assert s.request.reshape(4, 2).tolist() == [[0, 1], [0, 1], [2, 1], [3, 4]]
    assert s.pos.reshape(4, 2).tolist() == [[0, 0], [1, 1], [0, 2], [0, 0]]


def test_stream_ends_at_last_full_iteration():
    s = schedule(np.array([3, 5, 2]), concurrency=2)
    assert s.iterations == 5  # slot 0: 3 + 2 = 5, slot 1: 5


def test_too_few_requests_is_an_error():
    with pytest.raises(ValueError, match="full iterations"):
        schedule(np.array([1, 1, 1]), concurrency=2, iterations=10)


def test_every_request_token_appears_once_and_in_order(rng):
    s = synthetic_stream(rng, 16, 200, 4, 40)
    assert s.n_tokens == 3200
    for r in np.unique(s.request)[:50]:
        pos = s.pos[s.request == r]
        assert (pos == np.arange(pos.size)).all()
    assert ((s.is_test()) == (2 * s.pos >= s.length)).all()
