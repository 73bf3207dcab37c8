"""Database errors by meaning, the retry helper for idempotent transactions, and 503 (never a
500) while the database is away. The same on a real Galera cluster:
tests/topology/test_galera.py."""
import json
import sqlite3

import pytest
from django.db import IntegrityError, OperationalError, ProgrammingError, connection, transaction
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import path

from accounts.models import Role
from accounts.tests.factories import RoleFactory
from wework.db import errors as db_errors
from wework.db.retry import backoff_delay, idempotent_transaction, run_idempotent
from wework.errors import UnavailableError


@pytest.mark.parametrize("exc, kind", [
    (OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction"), "conflict"),
    (OperationalError(1205, "Lock wait timeout exceeded"), "conflict"),
    (OperationalError(1047, "WSREP has not yet prepared node for application use"), "unavailable"),
    (OperationalError(2006, "Server has gone away"), "unavailable"),
    (OperationalError(2013, "Lost connection to server during query"), "unavailable"),
    (OperationalError(1927, "Connection was killed"), "unavailable"),
    (OperationalError("database is locked"), "conflict"),
    (IntegrityError(1062, "Duplicate entry"), None),
    (ProgrammingError(1146, "Table doesn't exist"), None),
    (ValueError("not a database error"), None),
])
def test_errors_are_classified_by_code(exc, kind):
    assert db_errors.classify(exc) == kind


def test_the_code_is_found_on_the_driver_error_behind_djangos():
    try:
        try:
            raise sqlite3.OperationalError("database is locked")
        except sqlite3.OperationalError as inner:
            raise OperationalError(*inner.args) from inner
    except OperationalError as exc:
        assert db_errors.classify(exc) == "conflict"
    wrapped = OperationalError("wrapped")
    wrapped.__cause__ = OperationalError(2013, "Lost connection")
    assert db_errors.error_code(wrapped) == 2013


def test_backoff_grows_exponentially_up_to_its_cap_with_jitter():
    top = lambda: 1.0  # noqa: E731 - the largest jitter
    assert [backoff_delay(a, 0.05, 1.0, top) for a in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
    assert backoff_delay(3, 0.05, 1.0, lambda: 0.5) == 0.2


class _Failing:
    """Creates a role, then fails with `errors` (one per call) before COMMIT; then succeeds."""

    def __init__(self, *errors):
        self.errors = list(errors)
        self.calls = 0

    def __call__(self):
        self.calls += 1
        RoleFactory(name=f"attempt{self.calls}")
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.mark.django_db(transaction=True)
def test_a_conflict_is_retried_and_only_the_last_attempt_commits():
    sleeps = []
    work = _Failing(OperationalError(1213, "Deadlock"), OperationalError(1205, "Lock wait timeout"))
    assert run_idempotent(work, sleep=sleeps.append) == "done"
    assert work.calls == 3 and len(sleeps) == 2
    # The failed attempts were rolled back.
    assert list(Role.objects.filter(name__startswith="attempt").values_list("name", flat=True)) == ["attempt3"]


@pytest.mark.django_db(transaction=True)
def test_a_lost_connection_is_retried_on_a_new_connection():
    work = _Failing(OperationalError(2013, "Lost connection to server during query"))
    first = connection.connection
    assert run_idempotent(work, sleep=lambda s: None) == "done"
    assert work.calls == 2
    if not (connection.vendor == "sqlite" and connection.is_in_memory_db()):  # never closed
        assert connection.connection is not first  # reconnected (through a proxy: another node)
    assert Role.objects.filter(name__startswith="attempt").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_connection_lost_at_commit_is_retried_for_an_idempotent_operation(monkeypatch):
    real_commit = connection.commit
    commits = []

    def commit():
        commits.append(1)
        if len(commits) == 1:
            raise OperationalError(2013, "Lost connection to server during query")
        return real_commit()

    monkeypatch.setattr(connection, "commit", commit)

    @idempotent_transaction(attempts=3)
    def ensure_role():
        # Idempotent: creates the role only when it is not there.
        Role.objects.get_or_create(name="ops", defaults={"display_name": "Ops"})
        return Role.objects.get(name="ops").display_name

    assert ensure_role() == "Ops"
    assert len(commits) == 2
    assert Role.objects.filter(name="ops").count() == 1


@pytest.mark.django_db(transaction=True)
def test_after_the_last_attempt_the_error_is_unavailable():
    work = _Failing(*[OperationalError(1213, "Deadlock")] * 3)
    with pytest.raises(UnavailableError) as raised:
        run_idempotent(work, attempts=3, sleep=lambda s: None)
    assert raised.value.status == 503 and raised.value.code == "database_unavailable"
    assert db_errors.error_code(raised.value.__cause__) == 1213
    assert Role.objects.filter(name__startswith="attempt").count() == 0


@pytest.mark.django_db(transaction=True)
def test_other_errors_are_not_retried():
    work = _Failing(IntegrityError(1062, "Duplicate entry"))
    with pytest.raises(IntegrityError):
        run_idempotent(work, sleep=lambda s: None)
    assert work.calls == 1


@pytest.mark.django_db(transaction=True)
def test_inside_a_callers_transaction_it_runs_once_and_leaves_the_error_to_the_caller():
    work = _Failing(OperationalError(1213, "Deadlock"))
    with pytest.raises(OperationalError):
        with transaction.atomic():
            run_idempotent(work, sleep=lambda s: None)
    assert work.calls == 1


# --- 503 instead of 500 -------------------------------------------------------------------------

def _down(request):
    raise OperationalError(2003, "Can't connect to server on '127.0.0.1' (111)")


def _broken(request):
    raise ProgrammingError(1064, "You have an error in your SQL syntax")


def _ok(request):
    return HttpResponse("ok")


urlpatterns = [
    path("api/v1/things", _down),
    path("events", _down),
    path("page", _down),
    path("broken", _broken),
    path("ok", _ok),
]


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_database_outage_answers_503_json_to_api_clients(client):
    response = client.get("/api/v1/things")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert json.loads(response.content)["code"] == "database_unavailable"
    response = client.post("/events", data="{}", content_type="application/json",
                           HTTP_ACCEPT="application/json")
    assert response.status_code == 503 and response["Content-Type"] == "application/json"


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_database_outage_answers_a_503_page_to_browsers(client):
    response = client.get("/page", HTTP_ACCEPT="text/html")
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert b"Service unavailable" in response.content


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_a_programming_error_stays_a_500(client):
    client.raise_request_exception = False
    assert client.get("/broken").status_code == 500


def test_handler500_answers_503_for_an_outage_outside_a_view():
    from wework.middleware import server_error

    request = RequestFactory().get("/api/v1/templates/", HTTP_ACCEPT="application/json")
    try:
        raise OperationalError(2006, "Server has gone away")
    except OperationalError:
        response = server_error(request)
    assert response.status_code == 503


def test_the_api_exception_handler_answers_503_for_an_outage():
    from rest_framework.test import APIRequestFactory

    from wework.api.exceptions import exception_handler

    request = APIRequestFactory().get("/api/v1/templates/")
    response = exception_handler(OperationalError(1047, "WSREP has not yet prepared node"),
                                 {"request": request, "view": None})
    assert response.status_code == 503
    assert response.data["code"] == "database_unavailable"
    assert response["Retry-After"] == "5"


def test_driver_errors_are_classified_too():
    import MySQLdb

    assert db_errors.classify(MySQLdb.OperationalError(1213, "Deadlock found")) == "conflict"
    assert db_errors.classify(MySQLdb.OperationalError(2013, "Lost connection")) == "unavailable"
    assert db_errors.classify(sqlite3.OperationalError("database is locked")) == "conflict"
    assert db_errors.classify(MySQLdb.IntegrityError(1062, "Duplicate entry")) is None
