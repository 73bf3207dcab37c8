"""Token authentication cost per API request, over an unauthenticated baseline.

Measured in one run, interleaved (see harness.py), on the dedicated bench database:

* unauthenticated -- a DRF APIView with no authentication and AllowAny, returning {"ok": true},
                     through the full middleware stack with the in-process test client.
* token auth      -- the same view with the project's TokenAuthentication and an
                     `Authorization: Bearer wwa...` header (IsAuthenticated).
* authenticate_access() alone -- the lookup by public id (one indexed SELECT joining users),
                     HMAC-SHA256 digest and constant-time compare, without HTTP.
* raw SELECT      -- the same row fetched with the driver's cursor (the floor of the lookup).

Target (issue 3): token auth adds under 1 ms per request (median).
Run: `.venv/bin/python bench/bench_auth.py [--quick]`.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    bench_args, environment_line, report, save_results, setup_django, time_interleaved,
)

urlpatterns = []  # filled in main(); this module is the ROOT_URLCONF during the run


def build_views():
    from django.urls import path
    from rest_framework import permissions
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from wework.api.authentication import TokenAuthentication

    class Open(APIView):
        authentication_classes = []
        permission_classes = [permissions.AllowAny]

        def get(self, request):
            return Response({"ok": True})

    class Authenticated(Open):
        authentication_classes = [TokenAuthentication]
        permission_classes = [permissions.IsAuthenticated]

    return [path("bench/open/", Open.as_view()), path("bench/token/", Authenticated.as_view())]


def main():
    args = bench_args("Token authentication cost per request")
    setup_django(args)
    print(environment_line())

    from django.db import connection
    from django.test import Client
    from django.test.utils import override_settings

    from accounts.models import User
    from accounts.services import sessions as session_services

    user = User.objects.create_user("bench-token", "bench-token@example.com", "x")
    # a realistic table: many sessions of many users
    for i in range(200):
        other = User.objects.create_user(f"bench-u{i}", f"bench-u{i}@example.com", None)
        for _ in range(5):
            session_services.issue_tokens(other, None)
    row, access, _refresh = session_services.issue_tokens(user, None)

    urlpatterns[:] = build_views()
    with override_settings(ROOT_URLCONF=__name__):
        client = Client()
        header = {"HTTP_AUTHORIZATION": f"Bearer {access}"}

        def open_view():
            response = client.get("/bench/open/")
            assert response.status_code == 200

        def token_view():
            response = client.get("/bench/token/", **header)
            assert response.status_code == 200, response.content

        def lookup():
            session_services.authenticate_access(access)

        sql = (
            "SELECT s.*, u.* FROM user_sessions s JOIN users u ON u.id = s.user_id "
            "WHERE s.session_id = %s AND s.session_type = 1 LIMIT 1"
        )

        def raw():
            with connection.cursor() as cursor:
                cursor.execute(sql, [row.session_id])
                cursor.fetchall()

        stats = time_interleaved(
            {"open": open_view, "token": token_view, "lookup": lookup, "raw": raw},
            repeats=args.repeats,
        )
    for name, s in stats.items():
        print(f"#   {name:8s} {s.summary()}")
    open_ms, token_ms = stats["open"].median_ms, stats["token"].median_ms
    report("request with token auth", token_ms, "ms", open_ms, "ms (unauthenticated)")
    report("token auth cost per request", token_ms - open_ms, "ms", 1.0, "ms (target)",
           note="median difference; target < 1 ms")
    report("authenticate_access() alone", stats["lookup"].median_ms, "ms",
           stats["raw"].median_ms, "ms (raw SELECT)")
    print(f"# results: {save_results(args)}")


if __name__ == "__main__":
    main()
