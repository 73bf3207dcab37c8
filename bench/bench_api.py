"""API list overhead: a DRF list endpoint of 50 rows against raw SQL and a bare Django view.

Measured in one run, interleaved, on the dedicated bench database (MariaDB `wework_bench` by
default, see harness.py):

* raw SQL      -- the same driver's cursor: SELECT 50 rows of `users`, fetchall, json.dumps.
* ORM values   -- `User.objects.values(...)[:50]`, json.dumps (no HTTP).
* bare view    -- a plain Django view returning JsonResponse(list(values()[:50])), through the
                  full middleware stack with the in-process test client, logged in.
* DRF list     -- a `ListAPIView` with a `ModelSerializer` of the same columns and the project's
                  REST_FRAMEWORK defaults (session auth, IsAuthenticated, filter backends,
                  PageNumberPagination with PAGE_SIZE 50, so a COUNT(*) as well), same client.
* project API  -- if the project itself routes a users list under /api/v1/, that endpoint too.

Run: `.venv/bin/python bench/bench_api.py [--quick]`.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    bench_args, environment_line, report, save_results, setup_django, time_interleaved,
)

FIELDS = ("id", "username", "email", "nickname", "status", "created_at", "updated_at")
urlpatterns = []  # filled in main(); this module is the ROOT_URLCONF during the run


def seed_users(count):
    from django.contrib.auth.hashers import make_password

    from accounts.models import User

    User.all_objects.all().delete()
    password = make_password("bench-password-1")
    User.objects.bulk_create(
        [User(username=f"user{i:05d}", email=f"user{i:05d}@example.com",
              nickname=f"运营 {i}", password=password) for i in range(count)],
        batch_size=500,
    )
    return bench_reader()


def bench_reader():
    """A user who may view users without a second factor: the built-in `auditor` role when the
    access-control roles exist (super admins must verify an OTP), else a superuser."""
    from accounts.models import User

    try:
        from accounts.models import Role
        from accounts.services import permissions as perm_services
    except ImportError:
        return User.objects.create_superuser("bench-reader", "bench-reader@example.com", "x")
    perm_services.seed_roles()
    user = User.objects.create_user("bench-reader", "bench-reader@example.com", "x")
    perm_services.grant_role(user, Role.objects.get(name="auditor"), granted_by=None)
    return user


def build_views():
    from django.contrib.auth.decorators import login_required
    from django.http import JsonResponse
    from django.urls import path
    from rest_framework import generics, serializers

    from accounts.models import User

    class UserSerializer(serializers.ModelSerializer):
        class Meta:
            model = User
            fields = FIELDS

    class UserList(generics.ListAPIView):
        queryset = User.objects.order_by("id")
        serializer_class = UserSerializer

    @login_required
    def bare_view(request):
        rows = list(User.objects.order_by("id").values(*FIELDS)[:50])
        return JsonResponse({"results": rows})

    return [
        path("bench/drf/users/", UserList.as_view()),
        path("bench/bare/users/", bare_view),
    ]


def project_users_url():
    """The project's own users list under /api/v1/, when one is routed."""
    from django.urls import NoReverseMatch, reverse

    for name in ("api:user-list", "api:users-list", "api:accounts-user-list"):
        try:
            return reverse(name, urlconf="wework.urls")
        except NoReverseMatch:
            continue
    return None


def main():
    args = bench_args(__doc__.splitlines()[0])
    url = setup_django(args)

    from django.conf import settings
    from django.core.serializers.json import DjangoJSONEncoder
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, override_settings
    from django.urls import clear_url_caches, include, path

    from accounts.models import User

    environment_line(url)
    reader = seed_users(200 if args.quick else 2000)

    urlpatterns[:] = build_views()
    real_url = project_users_url()
    if real_url:
        urlpatterns.append(path("", include("wework.urls")))

    columns = ", ".join(
        User._meta.get_field(f).column if f != "id" else "id" for f in FIELDS
    )
    raw_sql = f"SELECT {columns} FROM users WHERE deleted_at IS NULL ORDER BY id LIMIT 50"

    def raw():
        with connection.cursor() as cursor:
            cursor.execute(raw_sql)
            names = [c[0] for c in cursor.description]
            rows = [dict(zip(names, row)) for row in cursor.fetchall()]
        return json.dumps({"results": rows}, cls=DjangoJSONEncoder)

    def orm_values():
        rows = list(User.objects.order_by("id").values(*FIELDS)[:50])
        return json.dumps({"results": rows}, cls=DjangoJSONEncoder)

    with override_settings(ROOT_URLCONF=__name__):
        clear_url_caches()
        client = Client()
        client.force_login(reader)

        def get(path_):
            def call():
                response = client.get(path_)
                assert response.status_code == 200, (path_, response.status_code)
                return response
            return call

        drf = get("/bench/drf/users/")
        bare = get("/bench/bare/users/")
        assert len(json.loads(drf().content)["results"]) == 50
        assert len(json.loads(bare().content)["results"]) == 50

        fns = {"raw": raw, "orm": orm_values, "bare": bare, "drf": drf}
        if real_url:
            fns["project"] = get(real_url)
        queries = {}
        for name, fn in fns.items():  # queries per call: deterministic, unlike the timings
            with CaptureQueriesContext(connection) as captured:
                fn()
            queries[name] = len(captured.captured_queries)
        stats = time_interleaved(fns, repeats=args.repeats)

    for name, s in stats.items():
        print(f"#   {name:8s} {s.summary()}")
    raw_ms, bare_ms = stats["raw"].median_ms, stats["bare"].median_ms
    report("orm .values() 50 rows + json", stats["orm"].median_ms, "ms", raw_ms, "ms (raw SQL)")
    report("bare Django view 50 rows", bare_ms, "ms", raw_ms, "ms (raw SQL)")
    report("DRF list 50 rows", stats["drf"].median_ms, "ms", raw_ms, "ms (raw SQL)")
    report("DRF list 50 rows vs bare view", stats["drf"].median_ms, "ms", bare_ms,
           "ms (bare view)")
    report("DRF list 50 rows p95", stats["drf"].p(95), "ms", stats["bare"].p(95),
           "ms (bare view p95)")
    if real_url:
        report(f"project API {real_url}", stats["project"].median_ms, "ms", bare_ms,
               "ms (bare view)")
    report("DRF list queries per request", queries["drf"], "queries", queries["bare"],
           "queries (bare view)")
    if real_url:
        report("project API queries per request", queries["project"], "queries",
               queries["bare"], "queries (bare view)")
    report("DRF list throughput (1 process)", stats["drf"].per_second, "req/s",
           stats["bare"].per_second, "req/s (bare view)")
    print(f"# results: {save_results(args)}  (database {settings.DATABASES['default']['NAME']})")


if __name__ == "__main__":
    main()
