"""Every API list pages by cursor over the id: no COUNT(*) on any page, the same number of
queries whatever the table's size, a page size the client may choose (`?limit=`) and a 400 for
one it may not."""
import re

import pytest
from django.urls import reverse

from accounts.tests.factories import UserFactory
from wework.api.urls import _modules
from wework.testing.fixtures import login_verified
from wework.testing.queries import capture_queries

pytestmark = pytest.mark.django_db

COUNT = re.compile(r"\bCOUNT\(", re.IGNORECASE)


def _list_urls():
    for module in _modules:
        for prefix, viewset, basename in module.router.registry:
            if hasattr(viewset, "list"):
                yield basename, reverse(f"api:{basename}-list")


@pytest.fixture
def api(client):
    login_verified(client, UserFactory(is_superuser=True))
    return client


def test_no_list_counts_its_rows(api):
    answered = []
    for basename, url in _list_urls():
        with capture_queries() as queries:
            response = api.get(url)
        if response.status_code == 400:  # a list over a shard needs its shard (instance, month)
            continue
        assert response.status_code == 200, (basename, response.status_code, response.content[:300])
        body = response.json()
        assert "count" not in body, basename
        counted = [q["sql"] for q in queries if COUNT.search(q["sql"])]
        # COUNT over the grants of one user (permission checks) is not a list's count
        counted = [sql for sql in counted if "guardian" not in sql and "user_roles" not in sql]
        assert not counted, (basename, counted)
        answered.append(basename)
    assert len(answered) >= 10, answered


def test_the_page_size_is_the_clients_and_a_bad_one_is_a_400(api):
    for _ in range(5):
        UserFactory()
    url = reverse("api:user-list")
    page = api.get(url, {"limit": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    second = api.get(page["next"]).json()
    assert len(second["results"]) == 2
    assert not {u["id"] for u in page["results"]} & {u["id"] for u in second["results"]}
    for bad in ("0", "abc", "501", "-1"):
        response = api.get(url, {"limit": bad})
        assert response.status_code == 400 and "limit" in response.json(), bad


def test_a_page_costs_the_same_queries_whatever_the_table_size(api):
    url = reverse("api:user-list")
    with capture_queries() as few:
        api.get(url, {"limit": 5})
    for _ in range(30):
        UserFactory()
    with capture_queries() as many:
        api.get(url, {"limit": 5})
    assert len(many) == len(few)


def test_lists_over_shards_refuse_unknown_parameters_and_bad_pages_under_their_names(api):
    """`?metric_nmae=cpu` once returned every metric, `?nmae=x` on the logs was a 200 and a bad
    `limit` was reported under `after`: the lists over shards share one page contract."""
    from instances.tests.factories import WeworkInstanceFactory

    instance = WeworkInstanceFactory()
    lists = {
        reverse("api:instancemonitor-list"): {"instance": instance.pk},
        "/api/v1/monitoring/system-logs/": {},
        "/api/v1/messaging/messages/": {},
    }
    for url, needed in lists.items():
        ok = api.get(url, needed)
        assert ok.status_code == 200, (url, ok.content[:200])
        assert set(ok.json()) >= {"results", "next_after"}, url
        misspelt = api.get(url, {**needed, "metric_nmae": "cpu"})
        assert misspelt.status_code == 400 and "metric_nmae" in misspelt.json(), url
        # An `after` above a BIGINT is no id (the fuzz test's 500: "... is not a Snowflake id").
        for bad, key in (({"limit": "abc"}, "limit"), ({"limit": "0"}, "limit"), ({"after": "x"}, "after"),
                         ({"after": str(2 ** 63)}, "after"), ({"after": "64899975578903820611780345856"}, "after")):
            response = api.get(url, {**needed, **bad})
            assert response.status_code == 400 and set(response.json()) == {key}, (url, bad, response.json())
