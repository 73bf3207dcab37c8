"""The puppet-service tools are set up (scripts/setup-bridge): the bridge's other tests need them.
Outside CI a machine without node skips them with the reason given here; in CI this fails."""
import os

import pytest

from bridge.testing import missing_setup


def test_puppet_service_tools_are_set_up():
    reason = missing_setup()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the bridge's tests: {reason}")
        pytest.skip(f"{reason}; the bridge's tests are not collected")
