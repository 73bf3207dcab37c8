"""API and admin of instances and contacts: listing, write-only secrets, actions with
permission checks (role grant, object grant on one instance, outsider)."""
import pytest
from django.urls import reverse

from accounts.services.permissions import grant_instance, sync_permissions
from wework.testing.fixtures import login_verified
from contacts.models import WeworkAccount
from instances import services
from instances.models import ConfigType, InstanceConfig
from instances.tests.factories import UserFactory, WeworkInstanceFactory

from wework.testing.instances import SECRET

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def perms():
    sync_permissions()


@pytest.fixture
def root_client(client, admin_user):
    login_verified(client, admin_user)
    return client


def test_api_lists_instances_and_masks_encrypted_configs(root_client, registered):
    response = root_client.get("/api/v1/instances/")
    assert response.status_code == 200
    assert [i["name"] for i in response.json()["results"]] == ["sim"]
    configs = root_client.get(f"/api/v1/instance-configs/?instance={registered.pk}").json()
    values = {c["config_key"]: c["config_value"] for c in configs["results"]}
    assert values["webhook_secret"] == services.MASK
    assert SECRET not in str(configs)


def test_api_config_create_validates_typed_values(root_client, registered):
    url = "/api/v1/instance-configs/"
    bad = root_client.post(url, {"instance": registered.pk, "config_key": "n",
                                 "config_type": "number", "config_value": "ten"},
                           content_type="application/json")
    assert bad.status_code == 400
    assert "config_value" in bad.json()
    for config_type, value in [("number", "1e999"), ("json", '[1,{"a":NaN}]')]:
        bad = root_client.post(url, {"instance": registered.pk, "config_key": "n",
                                     "config_type": config_type, "config_value": value},
                               content_type="application/json")
        assert bad.status_code == 400, (value, bad.content)
        assert list(bad.json()) == ["config_value"]
    assert not InstanceConfig.objects.filter(config_key="n").exists()
    good = root_client.post(url, {"instance": registered.pk, "config_key": "secret_x",
                                  "config_type": "string", "config_value": "s3cret",
                                  "is_encrypted": True}, content_type="application/json")
    assert good.status_code == 201, good.content
    assert good.json()["config_value"] == services.MASK
    stored = InstanceConfig.objects.get(config_key="secret_x")
    assert stored.config_value != "s3cret"
    assert services.config_value(stored) == "s3cret"
    system = InstanceConfig.objects.get(config_key="api_token")
    assert root_client.delete(f"{url}{system.pk}/").status_code == 400


def test_api_restart_and_push_config(root_client, registered, simulator):
    response = root_client.post(f"/api/v1/instances/{registered.pk}/restart/", {},
                                content_type="application/json")
    assert response.status_code == 202, response.content
    assert response.json()["restart_count"] == 1
    push = root_client.post(f"/api/v1/instances/{registered.pk}/push-config/")
    assert push.status_code == 200
    assert "webhook_url" in push.json()["applied"]


def test_api_unreachable_instance_gives_502_json(root_client, admin_user, platform_url):
    from simulator.testing import unused_port

    instance = WeworkInstanceFactory(api_url=f"http://127.0.0.1:{unused_port()}",
                                     created_by=admin_user)
    response = root_client.post(f"/api/v1/instances/{instance.pk}/restart/")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "unreachable"


def test_api_qr_login_flow(root_client, registered, simulator):
    import httpx

    started = root_client.post(f"/api/v1/instances/{registered.pk}/logins/", {},
                               content_type="application/json")
    assert started.status_code == 201, started.content
    body = started.json()
    assert body["qr_svg"].startswith("<svg")
    login_id = body["login_id"]
    httpx.get(body["qrcode"])
    httpx.get(f"{simulator.url}/sim/confirm/{login_id}")
    status = root_client.get(f"/api/v1/instances/{registered.pk}/logins/{login_id}/").json()
    assert status["status"] == "confirmed"
    account = WeworkAccount.objects.get(pk=status["account"])
    # sync and logout through the API
    sync = root_client.post(f"/api/v1/wework-accounts/{account.pk}/sync/", {},
                            content_type="application/json")
    assert sync.status_code == 202
    contacts = root_client.get(f"/api/v1/contacts/?instance={registered.pk}")
    assert contacts.status_code == 200
    assert len(contacts.json()["results"]) == len(simulator.accounts[account.wxid].contacts)
    groups = root_client.get(f"/api/v1/groups/?instance={registered.pk}").json()["results"]
    assert groups
    members = root_client.get(
        f"/api/v1/group-members/?instance={registered.pk}&group={groups[0]['id']}")
    assert members.status_code == 200 and members.json()["results"]
    assert root_client.get("/api/v1/contacts/").status_code == 400
    logout = root_client.post(f"/api/v1/wework-accounts/{account.pk}/logout/")
    assert logout.status_code == 200 and logout.json()["is_logged_in"] is False


def test_object_grant_scopes_actions(client, perms, registered, simulator, admin_user):
    other = WeworkInstanceFactory(created_by=admin_user)
    operator = UserFactory()
    grant_instance(operator, registered, ["instances.view_weworkinstance",
                                          "instances.restart_instance"])
    grant_instance(operator, other, ["instances.view_weworkinstance"])
    client.force_login(operator)
    listed = {i["id"] for i in client.get("/api/v1/instances/").json()["results"]}
    assert listed == {registered.pk, other.pk}
    assert client.post(f"/api/v1/instances/{registered.pk}/restart/").status_code == 202
    assert client.post(f"/api/v1/instances/{other.pk}/restart/").status_code == 403
    assert client.post(f"/api/v1/instances/{registered.pk}/push-config/").status_code == 403
    assert client.post(f"/api/v1/instances/{registered.pk}/logins/").status_code == 403


def test_outsider_sees_nothing(client, perms, registered):
    outsider = UserFactory()
    client.force_login(outsider)
    response = client.get("/api/v1/instances/")
    assert response.status_code in (200, 403)
    if response.status_code == 200:
        assert response.json()["results"] == []
    assert client.post(f"/api/v1/instances/{registered.pk}/restart/").status_code in (403, 404)
    assert client.get(f"/api/v1/contacts/?instance={registered.pk}").status_code in (403, 404)


def test_anonymous_is_refused(client, registered):
    assert client.get("/api/v1/instances/").status_code in (401, 403)


def test_admin_pages_render(root_client, registered, simulator):
    for name in ("instances_weworkinstance", "instances_instanceconfig",
                 "instances_instancemonitor", "instances_instanceevent",
                 "contacts_weworkaccount", "contacts_contact", "contacts_group",
                 "contacts_groupmember"):
        response = root_client.get(reverse(f"admin:{name}_changelist"))
        assert response.status_code == 200, name
    change = root_client.get(reverse("admin:instances_weworkinstance_change",
                                     args=[registered.pk]))
    assert change.status_code == 200
    config = InstanceConfig.objects.get(config_key="webhook_secret")
    page = root_client.get(reverse("admin:instances_instanceconfig_change", args=[config.pk]))
    assert page.status_code == 200
    assert SECRET.encode() not in page.content
    assert config.config_value.encode() not in page.content


def test_admin_qr_login_page_and_status(root_client, registered, simulator):
    url = reverse("admin:instances_weworkinstance_qr_login", args=[registered.pk])
    assert root_client.post(url).status_code == 302  # starting a login is a POST
    page = root_client.get(url)
    assert page.status_code == 200
    assert b"<svg" in page.content
    login_id = next(iter(simulator.logins))
    status = root_client.get(reverse("admin:instances_weworkinstance_qr_login_status",
                                     args=[registered.pk, login_id]))
    assert status.json()["status"] == "waiting"


def test_admin_actions(root_client, registered, simulator):
    url = reverse("admin:instances_weworkinstance_changelist")
    # a restart interrupts work: the action asks first, and restarts nothing until confirmed
    ask = root_client.post(url, {"action": "restart_selected", "_selected_action": [registered.pk]})
    assert ask.status_code == 200 and b'name="confirmed" value="yes"' in ask.content
    assert registered.name.encode() in ask.content
    registered.refresh_from_db()
    assert registered.restart_count == 0
    response = root_client.post(url, {"action": "restart_selected", "_selected_action": [registered.pk],
                                      "confirmed": "yes"}, follow=True)
    assert response.status_code == 200
    registered.refresh_from_db()
    assert registered.restart_count == 1
    root_client.post(url, {"action": "push_config_selected",
                           "_selected_action": [registered.pk]})


def test_admin_config_form_keeps_encrypted_value(root_client, registered):
    config = services.set_config(registered, "proxy_token", "hidden", encrypted=True)
    url = reverse("admin:instances_instanceconfig_change", args=[config.pk])
    response = root_client.post(url, {"instance": registered.pk, "config_key": "proxy_token",
                                      "config_type": ConfigType.STRING, "is_encrypted": "on",
                                      "value": "", "description": "d"})
    assert response.status_code == 302, response.content[:2000]
    config.refresh_from_db()
    assert services.config_value(config) == "hidden"
    assert config.description == "d"


def test_admin_account_delete_and_restore_recount(root_client, registered):
    from contacts import services as contact_services

    account = contact_services.ensure_account(registered, "wx_del")
    registered.refresh_from_db()
    assert registered.current_accounts == 1
    url = reverse("admin:contacts_weworkaccount_changelist")
    root_client.post(url, {"action": "delete_selected", "_selected_action": [account.pk],
                           "post": "yes"})
    registered.refresh_from_db()
    assert registered.current_accounts == 0
    root_client.post(url + "?deleted=yes", {"action": "restore_selected",
                                            "_selected_action": [account.pk]})
    registered.refresh_from_db()
    assert registered.current_accounts == 1


def test_account_actions_need_their_permissions(client, perms, registered, admin_user):
    from contacts import services as contact_services

    account = contact_services.ensure_account(registered, "wx_perm")
    viewer = UserFactory()
    grant_instance(viewer, registered, ["instances.view_weworkinstance",
                                        "contacts.view_weworkaccount"])
    client.force_login(viewer)
    assert client.get(f"/api/v1/wework-accounts/{account.pk}/").status_code == 200
    assert client.post(f"/api/v1/wework-accounts/{account.pk}/sync/").status_code == 403
    assert client.post(f"/api/v1/wework-accounts/{account.pk}/logout/").status_code == 403
    qr = client.get(reverse("admin:instances_weworkinstance_qr_login", args=[registered.pk]))
    assert qr.status_code in (302, 403, 404)
    grant_instance(viewer, registered, ["contacts.sync_contacts"])
    response = client.post(f"/api/v1/wework-accounts/{account.pk}/sync/")
    assert response.status_code == 202  # queued; the task reports the account's state


@pytest.mark.parametrize("field,value", [
    ("api_url", "not a url"), ("api_url", "file:///etc/passwd"), ("max_accounts", "-5"),
    ("heartbeat_interval", "0"), ("proxy_port", "99999"), ("name", "taken"),
])
def test_admin_instance_form_rejects_bad_values(root_client, admin_user, field, value):
    from instances.models import WeworkInstance

    WeworkInstanceFactory(name="taken")
    data = {"name": "new-one", "api_url": "http://127.0.0.1:9", "max_accounts": "10",
            "heartbeat_interval": "30", "created_by": str(admin_user.pk), field: value}
    response = root_client.post(reverse("admin:instances_weworkinstance_add"), data)
    assert response.status_code == 200, "saved although invalid"
    assert field in response.context["adminform"].form.errors
    assert not WeworkInstance.objects.filter(name="new-one").exists()


def test_admin_qr_login_page_shows_label_and_simulator_scan_url(root_client, registered, simulator):
    from django.utils import translation

    url = reverse("admin:instances_weworkinstance_qr_login", args=[registered.pk])
    root_client.post(url)
    with translation.override("en"):
        page = root_client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    login_id = next(iter(simulator.logins))
    assert page.context["status_label"] != "waiting"
    assert f"/sim/scan/{login_id}".encode() in page.content


def test_admin_qr_login_get_starts_nothing_post_starts_one_login(registered, simulator,
                                                                  admin_user):
    """F8: a GET showed the page by starting a new login on the instance (and auditing it)."""
    from django.test import Client

    from monitoring.models import AuditLog

    client = Client(enforce_csrf_checks=True)
    login_verified(client, admin_user)
    url = reverse("admin:instances_weworkinstance_qr_login", args=[registered.pk])
    page = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and page.context["login"] is None
    assert b'id="qr-start"' in page.content and b'class="qr-image"' not in page.content
    assert simulator.logins == {}
    assert not AuditLog.objects.filter(operation="account.qr_login").exists()
    # no CSRF token: refused, nothing started
    assert client.post(url).status_code == 403
    assert simulator.logins == {}
    token = page.context["csrf_token"]
    response = client.post(url, {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302 and response["Location"] == url
    assert len(simulator.logins) == 1
    login_id = next(iter(simulator.logins))
    for _ in range(2):  # showing the page again shows the same login, starts none
        page = client.get(url, HTTP_ACCEPT_LANGUAGE="en")
        assert page.context["login"]["login_id"] == login_id
    assert len(simulator.logins) == 1
    assert AuditLog.objects.filter(operation="account.qr_login").count() == 1
    body = page.content.decode()
    assert 'class="qr-image"' in body and "Waiting for a scan" in body and ">waiting<" not in body
    assert f"{simulator.url}/sim/scan/{login_id}" in body
    assert f"{simulator.url}/sim/confirm/{login_id}" in body
    # another user sees no login of this one's
    other = UserFactory(is_superuser=True)
    other_client = Client()
    login_verified(other_client, other)
    assert other_client.get(url).context["login"] is None


def test_admin_qr_login_post_needs_the_login_permission(client, perms, registered, simulator):
    viewer = UserFactory()
    grant_instance(viewer, registered, ["instances.view_weworkinstance"])
    client.force_login(viewer)
    url = reverse("admin:instances_weworkinstance_qr_login", args=[registered.pk])
    assert client.post(url).status_code in (403, 404)
    assert simulator.logins == {}
    grant_instance(viewer, registered, ["contacts.login_account"])
    assert client.post(url).status_code == 302
    assert len(simulator.logins) == 1


def test_admin_qr_login_post_refused_by_capacity_shows_the_reason(root_client, registered,
                                                                  simulator):
    from instances.models import WeworkInstance

    WeworkInstance.objects.filter(pk=registered.pk).update(max_accounts=1, current_accounts=1)
    url = reverse("admin:instances_weworkinstance_qr_login", args=[registered.pk])
    page = root_client.post(url, follow=True, HTTP_ACCEPT_LANGUAGE="en")
    assert page.status_code == 200 and simulator.logins == {}
    assert "already has 1 of 1 accounts" in page.content.decode()


def test_admin_column_headers_are_translatable():
    """No list column falls back to Django's pretty_name of an attname ("Account id", guardian's
    untranslated "User"): each header must change with the language."""
    from django.contrib import admin as django_admin
    from django.contrib.admin.utils import label_for_field
    from django.utils import translation

    checked = 0
    for model, model_admin in django_admin.site._registry.items():
        if model._meta.app_label not in ("accounts", "instances", "contacts", "messaging",
                                         "monitoring"):
            continue
        for name in model_admin.list_display:
            if callable(name) or name == "__str__":
                continue
            with translation.override("en"):
                english = str(label_for_field(name, model, model_admin))
            with translation.override("zh-hans"):
                chinese = str(label_for_field(name, model, model_admin))
            if english.lower().endswith(" id") or english == "User":
                assert chinese != english, f"{model.__name__}.{name}: {english!r} untranslated"
            checked += 1
    assert checked > 50


def test_admin_instance_add_without_created_by_is_owned_by_the_user(root_client, admin_user):
    """Q2: the add page required a user id in 'created by' (a raw id field), although the
    admin fills in the current user when it is empty: adding an instance failed with
    'This field is required.'"""
    from instances.models import WeworkInstance

    data = {"name": "added-here", "api_url": "http://127.0.0.1:9", "max_accounts": "10",
            "heartbeat_interval": "30"}
    response = root_client.post(reverse("admin:instances_weworkinstance_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert WeworkInstance.objects.get(name="added-here").created_by == admin_user


def test_admin_instance_add_is_not_offered_on_an_instance_grant(client, registered):
    """Q2: an operator with an instance grant only was offered 'Add WeCom instance' and its
    form, and saving it answered a bare 403 (the new instance is outside the grant)."""
    from accounts.models import Role
    from accounts.services.permissions import seed_roles

    seed_roles()
    operator = UserFactory()
    grant_instance(operator, registered, Role.objects.get(name="operator"))
    client.force_login(operator)
    changelist = client.get(reverse("admin:instances_weworkinstance_changelist"))
    assert changelist.status_code == 200
    add_url = reverse("admin:instances_weworkinstance_add")
    assert add_url.encode() not in changelist.content
    assert client.get(add_url).status_code == 403
    change = client.get(reverse("admin:instances_weworkinstance_change", args=[registered.pk]))
    assert change.status_code == 200
