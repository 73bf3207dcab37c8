"""The dashboard (admin home page and API): pinned query counts, the figures of the day, and for
users whose only access is per-instance grants every figure, list and alert restricted to their
instances; the cache keyed per scope and language; users without access get nothing."""
import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils import timezone, translation

from accounts.services.permissions import grant_instance
from accounts.tests.factories import UserFactory
from contacts.models import AccountStatus
from contacts.tests.factories import WeworkAccountFactory
from instances.models import InstanceStatus
from instances.tests.factories import WeworkInstanceFactory
from messaging.models import Message, SendStatus, TaskStatus
from messaging.tests.factories import MessageTaskFactory
from monitoring import services
from monitoring.templatetags import monitoring_dashboard as dashboard_tag
from wework import shards

DASHBOARD_GRANT = ["instances.view_weworkinstance", "monitoring.view_alertrecord"]
# A scoped user resolves their grants too (roles, permissions, guardian rows): a few more.
DASHBOARD_MAX_QUERIES = 12  # measured: 9
SCOPED_MAX_QUERIES = DASHBOARD_MAX_QUERIES + 3  # measured: 10


def _world():
    """Instance A (one online account, a running task, an alert) and instance B (two banned
    accounts, a running task, alerts, a second offline instance B2), plus a global alert."""
    a = WeworkInstanceFactory(name="Instance A", status=InstanceStatus.ONLINE)
    b = WeworkInstanceFactory(name="Instance B", status=InstanceStatus.ONLINE)
    b2 = WeworkInstanceFactory(name="Instance B2", status=InstanceStatus.OFFLINE)
    acc_a = WeworkAccountFactory(instance=a, status=AccountStatus.ONLINE)
    acc_b = WeworkAccountFactory(instance=b, status=AccountStatus.BANNED)
    WeworkAccountFactory(instance=b, status=AccountStatus.BANNED)
    now = timezone.now()
    MessageTaskFactory(account=acc_a, task_name="task-of-A", status=TaskStatus.RUNNING,
                       started_at=now)
    MessageTaskFactory(account=acc_b, task_name="task-of-B", status=TaskStatus.RUNNING,
                       started_at=now)
    services.fire_alert("t.a", source_type="account", source_id=acc_a.pk, title="alert-of-A",
                        message="m", instance=a)
    services.fire_alert("t.b", source_type="account", source_id=acc_b.pk, title="alert-of-B",
                        message="m", instance=b)
    # an alert about instance B2 that names it only as its source
    services.fire_alert("t.b2", source_type="instance", source_id=str(b2.pk),
                        title="source-alert-of-B2", message="m")
    services.fire_alert("disk.full", source_type="host", source_id="db1", title="host-alert",
                        message="m", level="CRITICAL")
    return {"a": a, "b": b, "b2": b2, "acc_a": acc_a, "acc_b": acc_b}


def _scoped_user(*instances, perms=DASHBOARD_GRANT):
    user = UserFactory()
    for instance in instances:
        grant_instance(user, instance, perms)
    return user


def _counts(dash, key):
    return {row["status"]: row["count"] for row in dash[key]}


FOREIGN = ("Instance B", "task-of-B", "alert-of-B", "source-alert-of-B2", "host-alert")


@pytest.mark.django_db
def test_instance_grant_shows_the_figures_of_that_instance_only(client,
                                                                django_assert_max_num_queries):
    world = _world()
    client.force_login(_scoped_user(world["a"]))
    with django_assert_max_num_queries(SCOPED_MAX_QUERIES):
        response = client.get(reverse("admin:index"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="dashboard"' in body and 'id="dashboard-scope"' in body
    assert "task-of-A" in body and "alert-of-A" in body
    for foreign in FOREIGN:
        assert foreign not in body, foreign
    dash = response.context["dash"]
    assert dash["scoped"] and dash["instance_ids"] == [world["a"].pk]
    assert (dash["instances_online"], dash["instances_offline"]) == (1, 0)
    assert _counts(dash, "accounts")[AccountStatus.ONLINE] == 1
    assert _counts(dash, "accounts")[AccountStatus.BANNED] == 0
    assert [t["task_name"] for t in dash["running_tasks"]] == ["task-of-A"]
    assert [a["alert_title"] for a in dash["active_alerts"]] == ["alert-of-A"]
    assert dash["active_alert_total"] == 1
    assert dash["chart"]["instances"]["values"] == [i["count"] for i in dash["instances"]]

    api = client.get(reverse("api:monitoring-dashboard"))
    assert api.status_code == 200
    data = api.json()
    assert data["instances_online"] == 1 and data["active_alert_total"] == 1
    assert [t["task_name"] for t in data["running_tasks"]] == ["task-of-A"]
    for foreign in FOREIGN:
        assert foreign not in api.content.decode(), foreign


@pytest.mark.django_db
def test_alerts_whose_source_is_a_granted_instance_are_shown():
    world = _world()
    user = _scoped_user(world["b2"])
    data = services.dashboard_for(user)
    assert [a["alert_title"] for a in data["active_alerts"]] == ["source-alert-of-B2"]
    assert (data["instances_online"], data["instances_offline"]) == (0, 1)


@pytest.mark.django_db
def test_two_scoped_users_never_share_cached_figures(django_assert_max_num_queries, login_verified):
    world = _world()
    user_a, user_b = _scoped_user(world["a"]), _scoped_user(world["b"], world["b2"])
    client_a, client_b = Client(), Client()
    client_a.force_login(user_a)
    client_b.force_login(user_b)
    first_a = client_a.get(reverse("admin:index")).context["dash"]
    first_b = client_b.get(reverse("admin:index")).context["dash"]  # A's entry is cached now
    assert [t["task_name"] for t in first_a["running_tasks"]] == ["task-of-A"]
    assert [t["task_name"] for t in first_b["running_tasks"]] == ["task-of-B"]
    assert sorted(a["alert_title"] for a in first_b["active_alerts"]) == [
        "alert-of-B", "source-alert-of-B2"]
    assert _counts(first_b, "accounts")[AccountStatus.BANNED] == 2
    assert (first_b["instances_online"], first_b["instances_offline"]) == (1, 1)
    # the API of each answers from its own cache entry
    assert client_b.get(reverse("api:monitoring-dashboard")).json()["instance_ids"] == sorted(
        [world["b"].pk, world["b2"].pk])
    assert client_a.get(reverse("api:monitoring-dashboard")).json()["instance_ids"] == [
        world["a"].pk]
    # A second rendering is served from the scope's cache entry (no dashboard queries) ...
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES - 6):
        again = client_a.get(reverse("admin:index")).context["dash"]
    assert again["running_tasks"] == first_a["running_tasks"]
    # ... and neither scope's entry is the global one, nor the global one theirs.
    admin = UserFactory(is_superuser=True)
    admin_client = Client()
    login_verified(admin_client, admin)
    everything = admin_client.get(reverse("admin:index")).context["dash"]
    assert not everything["scoped"] and everything["instances_online"] == 2
    assert everything["active_alert_total"] == 4
    assert client_a.get(reverse("admin:index")).context["dash"]["instances_online"] == 1


@pytest.mark.django_db
def test_scoped_cache_entries_are_per_language():
    world = _world()
    user = _scoped_user(world["a"])
    with translation.override("zh-hans"):
        chinese = services.dashboard_for(user)
    with translation.override("en"):
        english = services.dashboard_for(user)
    assert english["instances"][0]["label"] == "Offline"
    assert chinese["instances"][0]["label"] != "Offline"
    assert english["active_alerts"][0]["status_label"] == "Active"


@pytest.mark.django_db
def test_users_without_dashboard_access_get_nothing(client):
    world = _world()
    # grants that do not include a dashboard permission
    user = _scoped_user(world["a"], perms=["contacts.view_weworkaccount"])
    client.force_login(user)
    assert b'id="dashboard"' not in client.get(reverse("admin:index")).content
    assert client.get(reverse("api:monitoring-dashboard")).status_code == 403
    assert services.dashboard_for(user) is None
    assert services.dashboard_for(UserFactory()) is None


@pytest.mark.django_db
def test_instance_view_grant_without_alert_grant_hides_the_alerts(client):
    world = _world()
    user = _scoped_user(world["a"], perms=["instances.view_weworkinstance"])
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    dash = response.context["dash"]
    assert dash["instances_online"] == 1 and not dash["can_see_alerts"]
    assert dash["active_alerts"] == [] and dash["active_alert_total"] == 0
    assert "alert-of-A" not in response.content.decode()


@pytest.mark.django_db
def test_global_role_users_keep_the_global_dashboard(client, grant):
    world = _world()
    user = grant(UserFactory(), "monitoring.view_alertrecord")
    grant_instance(user, world["a"], DASHBOARD_GRANT)  # an object grant changes nothing
    client.force_login(user)
    data = client.get(reverse("api:monitoring-dashboard")).json()
    assert not data["scoped"] and data["instance_ids"] is None
    assert data["instances_online"] == 2 and data["active_alert_total"] == 4
    assert {t["task_name"] for t in data["running_tasks"]} == {"task-of-A", "task-of-B"}


@pytest.mark.django_db
def test_dashboard_renders_within_a_pinned_query_count(verified_admin_client,
                                                       django_assert_max_num_queries):
    for status in (InstanceStatus.ONLINE, InstanceStatus.ONLINE, InstanceStatus.OFFLINE):
        WeworkInstanceFactory(status=status)
    WeworkAccountFactory(status=AccountStatus.BANNED)
    services.fire_alert("disk.full", source_type="host", source_id="db1", title="Disk full db1",
                        message="m", level="CRITICAL")
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES):
        response = verified_admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'id="dashboard"' in body and "Disk full db1" in body
    assert "vendor/chartjs/chart.umd.js" in body and 'id="dashboard-data"' in body
    dash = response.context["dash"]
    # (the account's factory brings its own online instance)
    assert dash["instances_online"] == 3 and dash["instances_offline"] == 1
    assert {a["status"]: a["count"] for a in dash["accounts"]}[AccountStatus.BANNED] == 1
    assert dash["active_alert_total"] == 1
    # Cached: the second rendering runs none of the dashboard's queries.
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES - 6):
        assert verified_admin_client.get(reverse("admin:index")).status_code == 200


@pytest.mark.django_db
def test_dashboard_hidden_without_permission(client):
    user = UserFactory()
    client.force_login(user)
    response = client.get(reverse("admin:index"))
    assert response.status_code == 200 and b'id="dashboard"' not in response.content


def test_chartjs_is_served_from_static_with_its_licence():
    assert finders.find("vendor/chartjs/chart.umd.js")
    assert finders.find("vendor/chartjs/LICENSE.md")
    assert finders.find("monitoring/dashboard.js")


@pytest.mark.django_db
def test_dashboard_and_alert_api(client, grant):
    services.fire_alert("a", source_type="x", source_id="1", title="open one", message="m")
    closed, _created = services.fire_alert("b", source_type="x", source_id="2", title="closed",
                                           message="m")
    services.resolve(closed, None, "done")
    user = grant(UserFactory(), "monitoring.view_alertrecord")
    client.force_login(user)
    data = client.get(reverse("api:monitoring-dashboard")).json()
    assert data["active_alert_total"] == 1 and len(data["messages_per_hour"]) >= 1
    listed = client.get(reverse("api:alertrecord-list"), {"open": "true"}).json()
    assert [r["alert_title"] for r in listed["results"]] == ["open one"]
    outsider = UserFactory()
    client.force_login(outsider)
    assert client.get(reverse("api:monitoring-dashboard")).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_dashboard_counts_todays_messages_a_customer_saw_per_hour():
    """Hand-counted: 2 received and 3 sent-and-confirmed messages count; a failed attempt
    before a retry, a row still being sent and a row prepared for a receiver of a cancelled
    task (pending for ever) do not (the dashboard once showed 111 for 41 real messages)."""
    account = WeworkAccountFactory()
    before = services.dashboard_data(use_cache=False)["messages_today"]
    now = timezone.now()
    base = {"account_id": account.pk, "chat_type": 1, "chat_wxid": "wxid_x",
            "message_type": "text", "message_content": "hi", "send_time": now, "created_at": now}
    counted = [SendStatus.SUCCESS] * 5
    not_counted = [SendStatus.FAILED, SendStatus.SENDING, SendStatus.PENDING]
    shards.bulk_create(Message, [dict(base, send_status=s) for s in counted + not_counted])
    data = services.dashboard_data(use_cache=False)
    assert data["messages_today"] == before + 5
    local_hour = timezone.localtime(now).hour
    assert len(data["messages_per_hour"]) == local_hour + 1
    assert data["messages_per_hour"][local_hour] >= 5


@pytest.mark.django_db
def test_dashboard_charts_colour_each_status_by_its_meaning(verified_admin_client):
    """Chart.js's default palette drew "online" red: each status carries its own colour."""
    WeworkInstanceFactory(status=InstanceStatus.ONLINE)
    WeworkInstanceFactory(status=InstanceStatus.ERROR)
    response = verified_admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    chart = dashboard_tag.monitoring_dashboard({"request": response.wsgi_request})["chart"]
    colours = dict(zip(chart["instances"]["labels"], chart["instances"]["colors"], strict=True))
    assert colours[str(InstanceStatus.ONLINE.label)] == dashboard_tag.GOOD
    assert colours[str(InstanceStatus.ERROR.label)] == dashboard_tag.BAD
    assert colours[str(InstanceStatus.OFFLINE.label)] == dashboard_tag.IDLE
    accounts = dict(zip(chart["accounts"]["labels"], chart["accounts"]["colors"], strict=True))
    assert accounts[str(AccountStatus.ONLINE.label)] == dashboard_tag.GOOD
    assert accounts[str(AccountStatus.BANNED.label)] == dashboard_tag.BAD
    assert b'"colors"' in response.content


@pytest.mark.django_db
def test_dashboard_api_of_users_scoped_to_one_instance_covers_that_instance(client, grant):
    """Per-instance grants must not reveal the figures of every instance (F3): the dashboard
    covers the granted instance only (more in test_dashboard_scoped.py)."""

    mine, other = WeworkInstanceFactory(), WeworkInstanceFactory()
    services.fire_alert("a", source_type="instance", source_id=str(other.pk), title="other's alert",
                        message="m")
    user = UserFactory()
    grant_instance(user, mine, ["monitoring.view_alertrecord", "instances.view_weworkinstance"])
    client.force_login(user)
    response = client.get(reverse("api:monitoring-dashboard"))
    assert response.status_code == 200
    assert response.json()["instance_ids"] == [mine.pk]
    assert b"other's alert" not in response.content


@pytest.mark.django_db
def test_dashboard_labels_follow_the_language_of_each_request():
    from django.core.cache import cache
    from django.utils import translation

    cache.clear()
    services.fire_alert("a", source_type="x", source_id="1", title="t", message="m",
                        level="ERROR")
    with translation.override("zh-hans"):
        chinese = services.dashboard_data()
    with translation.override("en"):
        english = services.dashboard_data()  # cached figures, but not the Chinese labels
    assert english["instances"][0]["label"] == "Offline"
    assert chinese["instances"][0]["label"] != "Offline"
    assert english["active_alerts"][0]["level_label"] == "Error"
    assert english["active_alerts"][0]["status_label"] == "Active"
    assert chinese["active_alerts"][0]["status_label"] != "Active"


@pytest.mark.django_db
def test_every_admin_page_shows_the_open_alerts_badge_to_those_who_may_see_alerts(verified_admin_client, client):
    services.fire_alert("a", source_type="instance", source_id="1", title="one", message="m")
    services.fire_alert("b", source_type="instance", source_id="2", title="two", message="m")
    page = verified_admin_client.get(reverse("admin:contacts_weworkaccount_changelist")).content.decode()
    assert 'id="alert-badge"' in page and '<span class="alert-badge-count"' in page
    assert services.open_alert_count(UserFactory(is_superuser=True)) == 2
    # a user who may not read alerts gets no badge (and no count)
    assert services.open_alert_count(UserFactory()) is None


@pytest.mark.django_db(transaction=True)
def test_badge_and_dashboard_follow_an_alert_at_once_despite_the_cache():
    """The header's badge and the dashboard's alert card are cached for 15 s; an alert that
    opens or closes makes both stale at once, so they never disagree (the browser walk saw the
    dashboard list an alert while the badge said none)."""
    from django.core.cache import cache

    cache.clear()
    admin = UserFactory(is_superuser=True)
    assert services.open_alert_count(admin) == 0 and services.dashboard_for(admin)["active_alert_total"] == 0
    record, _created = services.fire_alert("a", source_type="instance", source_id="1", title="t", message="m")
    assert services.open_alert_count(admin) == 1
    assert services.dashboard_for(admin)["active_alert_total"] == 1
    services.acknowledge(record, admin, "looking")
    services.resolve_alert("a", source_type="instance", source_id="1")
    assert services.open_alert_count(admin) == 0
    assert services.dashboard_for(admin)["active_alert_total"] == 0
