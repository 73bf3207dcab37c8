"""The API answers what its OpenAPI schema says (issue 12), checked by schemathesis.

Every operation of the schema is called with generated valid and invalid input, with all of
schemathesis' checks (no server error, status codes, content types, headers and bodies that
conform to the schema, invalid input refused, ...), and then in stateful scenarios that follow
the schema's links (inferred by schemathesis from the operations: a created object's id feeds
its detail, update and delete). Two callers: a super administrator, and an operator with grants
on one instance only (its answers: 403/404 for the other instance's rows, documented). The
application runs in-process (WSGI) inside the test's transaction, on MariaDB in CI.

The number of examples is kept small (about two minutes in all on MariaDB): FUZZ_EXAMPLES
(per operation), FUZZ_SCENARIOS and FUZZ_STEPS raise it for a deeper run
(`FUZZ_EXAMPLES=200 FUZZ_SCENARIOS=500 scripts/test tests/test_api_fuzz.py`).
"""
from __future__ import annotations

import os

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.config import SchemathesisConfig

from accounts.services import sessions as session_services
from accounts.tests.factories import UserFactory
from accounts.services import permissions as perm_services
from instances.tests.factories import WeworkInstanceFactory
from wework.db.layout import primary_aliases

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "5"))
SCENARIOS = int(os.environ.get("FUZZ_SCENARIOS", "15"))
STEPS = int(os.environ.get("FUZZ_STEPS", "8"))
#: Operations that end the caller's own session: called, they would turn every later call into
#: a 401 (which the schema documents, so they stay in the schema but not in the run).
SELF_ENDING = [("POST", "/api/v1/auth/logout"), ("DELETE", "/api/v1/auth/sessions/{id}/")]


@pytest.fixture
def in_process(settings):
    """The WSGI application, inside the test's transaction: Django's request signals would
    close the connection (as Django's own test client, they are disconnected)."""
    settings.ALLOWED_HOSTS = ["*"]
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def world(db):
    """Two instances with rows to read, a super administrator and an operator of instance A."""
    a = WeworkInstanceFactory(name="fuzz-a")
    b = WeworkInstanceFactory(name="fuzz-b")
    root = UserFactory(username="fuzz_root", is_superuser=True)
    from accounts.services import otp as otp_services

    otp_services.create_confirmed_totp(root)
    operator = UserFactory(username="fuzz_operator")
    grantable = [n for n in perm_services.Permission.objects.filter(status=1).values_list("name", flat=True)
                 if perm_services.grantable_on_instance(n)]
    perm_services.grant_instance(operator, a, grantable)
    return {"a": a, "b": b, "superuser": root, "operator": operator}


def _token(user):
    _row, access, _refresh = session_services.issue_tokens(user, None)
    return access


#: Every check of schemathesis runs. `positive_data_acceptance` (a request the schema allows must
#: not be refused) also accepts a 400: OpenAPI cannot say that a filter's or a body's id must
#: name an existing object the caller may see, nor the rules across fields (a card's content is
#: an object, a template's variables are declared); those answers are 400 with the field's
#: message, which the other checks hold to the documented error shape.
CONFIG = SchemathesisConfig.from_dict({"checks": {
    "positive_data_acceptance": {"expected-statuses": ["2xx", "400", "401", "403", "404", "409", "429"]},
}})


def _schema(app, user):
    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.openapi.from_dict(raw, config=CONFIG)
    schema.app = app
    schema.base_url = "http://localhost"
    for method, path in SELF_ENDING:
        schema = schema.exclude(method=method, path=path)
    token = _token(user)

    @schema.auth()
    class BearerToken:
        """The caller's access token, in the header the schema declares (schemathesis removes or
        spoils it for its authentication checks)."""

        def get(self, case, ctx):
            return token

        def set(self, case, data, ctx):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return schema


def _settings(examples=EXAMPLES, **extra):
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
                    **extra)


def _run_operations(schema):
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @_settings()
        @given(case=operation.as_strategy())
        def check(case):
            case.call_and_validate()

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - collected, reported together
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
            if os.environ.get("FUZZ_FAILFAST"):
                break
    return failures


def _run_stateful(schema):
    machine = schema.as_state_machine()  # infers the links between operations first
    transitions = schema.statistic.transitions
    assert transitions.total >= 10, f"only {transitions.total} links: the scenarios would be single calls"

    class Isolated(machine):
        """Each scenario starts from the same rows: its writes are rolled back (a savepoint per
        database) when it ends. Which links a scenario may follow depends on what its responses
        hold (an empty list feeds no detail call), so rows left by an earlier scenario made a
        replayed one choose differently, and Hypothesis failed with FlakyStrategyDefinition."""

        def setup(self):
            super().setup()
            self._savepoints = [(alias, transaction.savepoint_create(using=alias)) for alias in primary_aliases()]

        def teardown(self):
            for alias, savepoint in reversed(self._savepoints):
                transaction.savepoint_rollback(savepoint, using=alias)
            super().teardown()

    Isolated.run(settings=_settings(SCENARIOS, stateful_step_count=STEPS))
    return transitions.total


@pytest.mark.parametrize("caller", ["superuser", "operator"])
def test_every_operation_answers_what_the_schema_says(in_process, world, caller):
    failures = _run_operations(_schema(in_process, world[caller]))
    assert not failures, "\n\n".join(failures)


@pytest.mark.parametrize("caller", ["superuser", "operator"])
def test_stateful_scenarios_follow_the_schemas_links(in_process, world, caller):
    _run_stateful(_schema(in_process, world[caller]))
