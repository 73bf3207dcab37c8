"""Fixtures of the bridge's tests: the real puppet-service server with the mock puppet (node),
skipped with the reason where node is missing, except in CI, where that is a failure."""
import os

import pytest

from bridge.testing import PuppetServiceMock, missing_setup, unused_port

# The test modules import the generated stubs: where the tools are missing (and this is not
# CI) they are not collected, and test_tools.py skips with the reason. In CI they are collected
# and fail.
if missing_setup() and not os.environ.get("CI"):
    collect_ignore_glob = ["test_bridge.py", "test_crash.py", "test_e2e.py", "test_resume.py"]


def _ports(n):
    """Free local ports (bound then released, as the simulator's tests pick theirs): the suite
    runs in parallel on shared machines. BRIDGE_TEST_BASE_PORT pins a range instead (n per
    xdist worker)."""
    base = os.environ.get("BRIDGE_TEST_BASE_PORT")
    if not base:
        return [unused_port() for _ in range(n)]
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    first = int(base) + index * n
    return list(range(first, first + n))


@pytest.fixture
def node_tools():
    reason = missing_setup()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the bridge's tests: {reason}")
        pytest.skip(reason)


@pytest.fixture
def ports():
    return _ports(4)


@pytest.fixture
def puppet_mock(node_tools, ports):
    mock = PuppetServiceMock([("insecure_bridge_test", ports[0])]).start()
    yield mock
    mock.stop()
