"""The persona matrix: every registered admin page class and every API viewset, for six personas.

Generic on purpose: models registered later by other apps are covered automatically. Objects
are made with the factories of `<app>/tests/factories.py`; a model without one is skipped with
the reason printed (run with -s to see the report).

Personas and what they must get (relative to the super admin's answer, the baseline):
* super_admin    - is_super_admin, logged in with a one-time code: the baseline itself.
* role_holder    - a role with every permission: the same answers as the baseline.
* object_grantee - object grants of every grantable permission on instance A only: the
                   baseline on models below an instance (INSTANCE_PATH) for rows of A, 404 for
                   rows of B, B's rows never listed; 403 (or 404) on global models.
* expired_grant  - the all-permission role, expired one second ago: like an outsider.
* disabled       - the all-permission role, account disabled: admin redirects to the login,
                   API answers 401.
* outsider       - active, no grant: 403 on lists and add pages, 403 or 404 on objects.
Self-service pages (own sessions) answer 200 to every active persona.
"""
import importlib
import inspect
import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.urls import URLPattern, URLResolver, reverse
from django.utils import timezone
from factory.django import DjangoModelFactory
from rest_framework.test import APIClient

from accounts.models import UserRole, UserSession, UserStatus
from accounts.services import permissions as perm_services
from accounts.services import sessions as session_services
from accounts.tests.factories import UserFactory
from accounts.tests.helpers import login_verified, role_with

pytestmark = pytest.mark.django_db

PERSONAS = ["super_admin", "role_holder", "object_grantee", "expired_grant", "disabled", "outsider"]
SELF_SERVICE = {UserSession}  # every active user sees their own rows
DENIED = {403, 404}


# --- fixtures ----------------------------------------------------------------------------------


def _factory_for(model):
    try:
        module = importlib.import_module(f"{model._meta.app_config.name}.tests.factories")
    except ModuleNotFoundError:
        return None
    for _name, obj in inspect.getmembers(module, inspect.isclass):
        if issubclass(obj, DjangoModelFactory) and obj._meta.model is model:
            return obj
    return None


def _make(model, instance, report):
    """An object of `model` (below `instance` when the model hangs below one), or None."""
    path = getattr(model, "INSTANCE_PATH", None)
    if path == "":
        return instance
    factory = _factory_for(model)
    if factory is None:
        where = model._meta.app_config.name.replace(".", "/")
        report.append(f"SKIP objects of {model._meta.label}: no factory in {where}/tests/factories.py "
                      "(changelist and add pages still checked)")
        return None
    kwargs = {path: instance} if path else {}
    try:
        return factory(**kwargs)
    except Exception as exc:  # report, do not hide: the changelist checks still run
        report.append(f"SKIP objects of {model._meta.label}: factory failed ({type(exc).__name__}: {exc})")
        return None


@pytest.fixture
def world():
    from instances.tests.factories import WeworkInstanceFactory

    inst_a, inst_b = WeworkInstanceFactory(name="Instance A"), WeworkInstanceFactory(name="Instance B")
    everything = role_with("matrix_all")
    users = {
        "super_admin": UserFactory(is_superuser=True),
        "role_holder": UserFactory(),
        "object_grantee": UserFactory(),
        "expired_grant": UserFactory(),
        "disabled": UserFactory(),
        "outsider": UserFactory(),
    }
    UserRole.objects.create(user=users["role_holder"], role=everything)
    UserRole.objects.create(user=users["disabled"], role=everything)
    UserRole.objects.create(
        user=users["expired_grant"], role=everything,
        expires_at=timezone.now().replace(microsecond=0) - timedelta(seconds=1),
    )
    from accounts.models import Permission

    grantable = [n for n in Permission.objects.filter(status=1).values_list("name", flat=True)
                 if perm_services.grantable_on_instance(n)]
    perm_services.grant_instance(users["object_grantee"], inst_a, grantable)
    return {"a": inst_a, "b": inst_b, "users": users}


def _admin_client(persona, user):
    from django.test import Client

    client = Client()
    if persona == "super_admin":
        login_verified(client, user)
    else:
        client.force_login(user)
    if persona == "disabled":
        user.status = UserStatus.DISABLED
        user.save(update_fields=["status"])
    return client


def _api_client(persona, user):
    if persona == "super_admin":
        from accounts.tests.helpers import enroll

        enroll(user)
    _row, access, _refresh = session_services.issue_tokens(user, None)
    if persona == "disabled":
        user.status = UserStatus.DISABLED
        user.save(update_fields=["status"])
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client


# --- admin -----------------------------------------------------------------------------------


def _admin_pages(model, objects):
    info = (model._meta.app_label, model._meta.model_name)
    pages = [("changelist", reverse("admin:%s_%s_changelist" % info), None),
             ("add", reverse("admin:%s_%s_add" % info), None)]
    for label, obj in objects.items():
        if obj is not None:
            pages.append((f"change[{label}]", reverse("admin:%s_%s_change" % info, args=[obj.pk]), label))
    return pages


def _expect_admin(persona, model, page, baseline, obj_label):
    """The set of acceptable status codes."""
    below_instance = getattr(model, "INSTANCE_PATH", None) is not None
    if persona in ("super_admin", "role_holder"):
        return {baseline}
    if persona == "disabled":
        return {302}
    if model in SELF_SERVICE and page == "changelist":
        return {200}
    if persona == "object_grantee" and below_instance:
        if obj_label == "b" and baseline == 200:
            return {404}
        if page == "add" and model is perm_services.instance_model():
            return {403}  # a new instance is outside every instance grant
        return {baseline}
    if page == "changelist" or page == "add":
        return {403}
    return DENIED


def test_admin_persona_matrix(world, capsys):
    report, failures = [], []
    registry = sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)
    objects = {}
    for model, _model_admin in registry:
        if getattr(model, "INSTANCE_PATH", None) is not None:
            objects[model] = {"a": _make(model, world["a"], report), "b": _make(model, world["b"], report)}
        else:
            objects[model] = {"global": _make(model, None, report) if model not in SELF_SERVICE else None}
    clients = {p: _admin_client(p, world["users"][p]) for p in PERSONAS}
    checked = 0
    for model, _model_admin in registry:
        for page, url, obj_label in _admin_pages(model, objects[model]):
            if obj_label in ("a", "b") and hasattr(_model_admin, "chosen_instance_id"):
                url = f"{url}?instance={world[obj_label].pk}"  # per-instance shard admins
            baseline = clients["super_admin"].get(url).status_code
            if page == "changelist" and baseline != 200:
                failures.append(f"{model._meta.label} {page}: super admin got {baseline}")
                continue
            if page.startswith("change[") and baseline != 200:
                report.append(f"NOTE {model._meta.label} {page}: super admin gets {baseline}; compared as is")
            for persona in PERSONAS[1:]:
                response = clients[persona].get(url)
                expected = _expect_admin(persona, model, page, baseline, obj_label)
                checked += 1
                if response.status_code not in expected:
                    failures.append(f"{model._meta.label} {page} {persona}: {response.status_code}, expected {sorted(expected)}")
                if persona == "disabled" and response.status_code == 302:
                    assert reverse("admin:login") in response["Location"]
                if (persona == "object_grantee" and page == "changelist" and response.status_code == 200
                        and getattr(model, "INSTANCE_PATH", None) is not None):
                    b_obj = objects[model].get("b")
                    if b_obj is not None:
                        change_b = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[b_obj.pk])
                        if change_b in response.content.decode():
                            failures.append(f"{model._meta.label} changelist lists a row of instance B to the grantee")
    with capsys.disabled():
        print(f"\nadmin persona matrix: {len(registry)} ModelAdmins, {checked} checks")
        for line in report:
            print("  " + line)
    assert not failures, "\n".join(failures)


# --- API -------------------------------------------------------------------------------------


def _walk(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _walk(p.url_patterns, prefix + str(p.pattern))
        elif isinstance(p, URLPattern):
            yield prefix + str(p.pattern), p


def _path(route, **values):
    route = route.lstrip("^").rstrip("$")
    route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: str(values[m.group(1)]), route)
    route = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)
    return "/api/v1/" + route


def _viewset_routes():
    from wework.api import urls as api_urls

    routes = {}
    for route, pattern in _walk(api_urls.urlpatterns):
        cls = getattr(pattern.callback, "cls", None)
        actions = getattr(pattern.callback, "actions", None) or {}
        if cls is None or not actions or "format" in route:
            continue
        kind = actions.get("get")
        if kind in ("list", "retrieve"):
            routes.setdefault(cls, {})[kind] = route
    return routes


def _model_of(cls):
    queryset = getattr(cls, "queryset", None)
    if queryset is not None:
        return queryset.model
    serializer = getattr(cls, "serializer_class", None)
    return getattr(getattr(serializer, "Meta", None), "model", None)


def _expect_api(persona, model, kind, baseline, obj_label):
    below_instance = getattr(model, "INSTANCE_PATH", None) is not None
    if persona in ("super_admin", "role_holder"):
        return {baseline}
    if persona == "disabled":
        return {401}
    if model in SELF_SERVICE:
        return {baseline} if kind == "list" else {200, 404}
    if persona == "object_grantee" and model._meta.label == "messaging.MessageTemplate":
        # whoever may compose (send_message on an instance) reads the enabled templates (Q2-10)
        return {baseline} if kind == "list" else {200, 404}
    if persona == "object_grantee" and below_instance:
        if obj_label == "b" and baseline == 200:
            return {404}
        return {baseline}
    if kind == "list":
        return {403}
    return DENIED


def _ids(response):
    try:
        body = response.json()
    except Exception:
        return set()
    rows = body.get("results", body) if isinstance(body, dict) else body
    return {row.get("id") for row in rows if isinstance(row, dict)} if isinstance(rows, list) else set()


def test_api_persona_matrix(world, capsys):
    report, failures = [], []
    routes = _viewset_routes()
    assert routes, "no viewsets found under /api/v1/"
    clients = {p: _api_client(p, world["users"][p]) for p in PERSONAS}
    checked = 0
    for cls, kinds in sorted(routes.items(), key=lambda item: item[0].__name__):
        model = _model_of(cls)
        if model is None:
            report.append(f"SKIP {cls.__name__}: no model to build objects from")
            continue
        if getattr(model, "INSTANCE_PATH", None) is not None:
            objs = {"a": _make(model, world["a"], report), "b": _make(model, world["b"], report)}
        elif model in SELF_SERVICE:
            objs = {}
        else:
            objs = {"global": _make(model, None, report)}
        requests = []
        if "list" in kinds:
            requests.append(("list", _path(kinds["list"]), None))
        if "retrieve" in kinds:
            lookup = getattr(cls, "lookup_url_kwarg", None) or getattr(cls, "lookup_field", "pk")
            field = getattr(cls, "lookup_field", "pk")
            for label, obj in objs.items():
                if obj is not None:
                    requests.append(("retrieve", _path(kinds["retrieve"], **{lookup: getattr(obj, field)}), label))
        for kind, url, label in requests:
            base = clients["super_admin"].get(url)
            baseline = base.status_code
            if baseline == 400 and getattr(model, "INSTANCE_PATH", None) is not None:
                # per-instance (sharded) endpoints take the instance as a parameter
                instance = world["b"] if label == "b" else world["a"]
                retry = clients["super_admin"].get(url, {"instance": instance.pk})
                if retry.status_code < 400:
                    url = f"{url}?instance={instance.pk}"
                    baseline = retry.status_code
                    if kind == "list":
                        # the grantee asking for instance B's shard must be refused
                        other = clients["object_grantee"].get(_path(kinds["list"]), {"instance": world["b"].pk})
                        checked += 1
                        if other.status_code not in DENIED:
                            failures.append(f"{cls.__name__} list?instance=B: grantee got {other.status_code}, expected 403/404")
            if baseline >= 500:
                failures.append(f"{cls.__name__} {kind}: super admin got {baseline}")
                continue
            if baseline != 200:
                report.append(f"NOTE {cls.__name__} {kind}[{label}]: super admin gets {baseline}; compared as is")
            for persona in PERSONAS[1:]:
                response = clients[persona].get(url)
                expected = _expect_api(persona, model, kind, baseline, label)
                checked += 1
                if response.status_code not in expected:
                    failures.append(f"{cls.__name__} {kind}[{label}] {persona}: {response.status_code}, expected {sorted(expected)}")
                if persona == "object_grantee" and kind == "list" and response.status_code == 200:
                    b_obj = objs.get("b")
                    if b_obj is not None and b_obj.pk in _ids(response):
                        failures.append(f"{cls.__name__} list shows a row of instance B to the grantee")
    with capsys.disabled():
        print(f"\nAPI persona matrix: {len(routes)} viewsets, {checked} checks")
        for line in report:
            print("  " + line)
    assert not failures, "\n".join(failures)
