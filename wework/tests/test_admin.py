"""The admin's bases: NULL JSON columns show an empty box (not the word "null") and an empty box
is saved as NULL; tags are edited as words; a refused page keeps the admin's frame."""
import pytest
from django.contrib import admin as django_admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import translation

from accounts.services import permissions as perm_services
from accounts.services import roles as role_services
from accounts.models import UserStatus
from accounts.tests.factories import UserFactory
from instances.tests.factories import WeworkInstanceFactory
from messaging.models import MessageTemplate
from wework.admin import EstimatedCountPaginator, TagListFormField
from wework.testing.fixtures import login_verified, role_with

pytestmark = pytest.mark.django_db


def test_null_json_fields_render_empty_and_save_as_null(verified_admin_client):
    client = verified_admin_client
    page = client.get(reverse("admin:messaging_messagetemplate_add")).content.decode()
    assert "null</textarea>" not in page
    assert 'name="tags"' in page
    response = client.post(reverse("admin:messaging_messagetemplate_add"), {
        "name": "Welcome", "message_type": "text", "content": "Hello", "variables": "", "tags": "",
        "status": 1, "sort_order": 0, "use_count": 0,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    template = MessageTemplate.objects.get(name="Welcome")
    assert template.tags is None
    change = client.get(reverse("admin:messaging_messagetemplate_change", args=[template.pk])).content.decode()
    assert "null</textarea>" not in change


def test_tags_are_edited_as_words_and_saved_as_a_list():
    field = TagListFormField(required=False)
    assert field.prepare_value(["vip", "北京"]) == "vip, 北京"
    assert field.clean("vip，北京、lead\nvip, ") == ["vip", "北京", "lead"]
    assert field.clean("") is None
    assert not field.has_changed(["vip", "北京"], "vip, 北京")
    assert field.has_changed(["vip"], "vip, new")


def test_a_refused_page_keeps_the_admin_frame_and_a_way_back(client):
    client.force_login(UserFactory())
    response = client.get(reverse("messaging:compose"), HTTP_REFERER="http://testserver/admin/")
    assert response.status_code == 403
    body = response.content.decode()
    assert 'id="site-name"' in body and 'id="denied-message"' in body  # the admin's header
    assert 'href="http://testserver/admin/"' in body  # back where the user came from


def test_the_app_list_follows_an_operators_day_in_every_language(verified_admin_client):
    for language in ("zh-hans", "en"):
        with translation.override(language):
            page = verified_admin_client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE=language)
        labels = [app["app_label"] for app in page.context["app_list"]]
        ours = [label for label in labels if label in ("messaging", "contacts", "instances", "monitoring", "accounts")]
        assert ours == ["messaging", "contacts", "instances", "monitoring", "accounts"], (language, labels)


def _models_shown(client, url="admin:index"):
    page = client.get(reverse(url))
    assert page.status_code == 200
    apps = page.context["available_apps"]
    return {model["object_name"] for app in apps for model in app["models"]}


def test_the_app_list_follows_a_permission_change_at_once(client, django_user_model):
    """The app list is kept by the worker for the user's access (wework.admin_site): a grant, a
    role's new permissions, an instance grant and a revocation show on the next page."""
    user = django_user_model.objects.create_user("clerk", "clerk@example.com", "pw-clerk-123")
    role = role_with("readers", ["messaging.view_messagetask"])
    perm_services.grant_role(user, role, granted_by=None)
    login_verified(client, user)
    first = _models_shown(client)
    assert "MessageTask" in first and "MessageTemplate" not in first and "WeworkAccount" not in first
    assert _models_shown(client) == first  # kept: the same list again
    role_services.set_role_permissions(role, perm_services.Permission.objects.filter(
        name__in=["messaging.view_messagetask", "messaging.view_messagetemplate"]))
    assert _models_shown(client) == first | {"MessageTemplate"}
    perm_services.grant_instance(user, WeworkInstanceFactory(), ["contacts.view_weworkaccount"])
    assert _models_shown(client) == first | {"MessageTemplate", "WeworkAccount"}
    perm_services.revoke_role(user, role)
    assert _models_shown(client) == (first - {"MessageTask"}) | {"WeworkAccount"}
    user.status = UserStatus.DISABLED  # deactivated: no admin page, no app list
    user.save()
    assert client.get(reverse("admin:index")).status_code == 302
    request = RequestFactory().get("/admin/")
    request.user = user
    assert django_admin.site.get_app_list(request) == []
    user.status = UserStatus.ENABLED
    user.is_superuser = True
    user.save()
    login_verified(client, user)
    assert len(_models_shown(client)) > 20


def test_the_kept_app_list_is_djangos(verified_admin_client, client, django_user_model):
    clerk = django_user_model.objects.create_user("clerk2", "clerk2@example.com", "pw-clerk-123")
    perm_services.grant_role(clerk, role_with("mixed", ["messaging.view_message", "contacts.view_contact",
                                                        "monitoring.view_auditlog"]), granted_by=None)
    site = django_admin.site
    for user in (verified_admin_client.user, clerk):
        for language in ("zh-hans", "en"):
            with translation.override(language):
                request = RequestFactory().get("/admin/")
                request.user = type(user).objects.get(pk=user.pk)
                kept = site.get_app_list(request)
                again = site.get_app_list(request)
                fresh = site._ordered_app_list(request, None)
                assert kept == again == fresh, (user, language)
                assert [str(app["name"]) for app in kept] == [str(app["name"]) for app in fresh]



def test_the_paginator_counts_up_to_its_cap_on_the_server(monkeypatch):
    """The capped count is counted by the server over at most count_cap + 1 ids: the same number
    as reading them."""
    monkeypatch.setattr(EstimatedCountPaginator, "count_cap", 3)
    for n in (0, 2, 3, 4, 9):
        UserFactory.reset_sequence(n * 100)
        users = [UserFactory().pk for _ in range(n)]
        rows = UserFactory._meta.model.objects.filter(pk__in=users).order_by("-id")
        assert EstimatedCountPaginator(rows, 2).count == min(n, 4)
        assert EstimatedCountPaginator(list(range(n)), 2).count == min(n, 4)
