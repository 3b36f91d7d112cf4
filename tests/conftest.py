from pathlib import Path

import numpy as np
import pytest


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """pyproject runs the tests on two xdist workers. The workflow tests all go to one of them, in one piece: they
    share session fixtures (pipeline runs of several minutes) that each worker would build again. The other worker
    takes the unit tests meanwhile. (xdist's --dist loadgroup would do this with marks, but under pytest 9.2 it
    ignores them: pytest-dev/pytest-xdist#1386.)"""
    from xdist.scheduler import LoadScopeScheduling

    workflow = (Path(__file__).parent / "workflow").relative_to(config.rootpath).as_posix() + "/"

    class WorkflowOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return workflow if nodeid.startswith(workflow) else nodeid

    return WorkflowOnOneWorker(config, log)
