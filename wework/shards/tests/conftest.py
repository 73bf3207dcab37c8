import pytest

from wework.shards import testing
from wework.shards.tests.models import PROBE_SHARDING


def drop_shard_tables():
    testing.drop_shard_tables(extra_bases=("probe_events", "probe_daily"))


def _reset():
    testing.reset_caches()


@pytest.fixture
def probe_sharding(settings, tmp_path):
    """SHARDING with the probe models added; exports into a temporary folder."""
    settings.SHARDING = {**getattr(settings, "SHARDING", {}), **PROBE_SHARDING}
    settings.SHARDING_EXPORT_DIR = str(tmp_path / "exports")
    _reset()
    yield settings
    _reset()


@pytest.fixture(autouse=True)
def _clean_shards(request):
    """Also before each test (a crashed earlier run may have left shard tables behind)."""
    marker = request.node.get_closest_marker("django_db")
    if marker is not None:
        with request.getfixturevalue("django_db_blocker").unblock():
            drop_shard_tables()
    _reset()
    yield
    if marker is not None:
        with request.getfixturevalue("django_db_blocker").unblock():
            drop_shard_tables()
    _reset()
