"""The OpenAPI schema says what the API answers (issue 12): required `instance` parameters of
the shard lists, the shapes of `messages/` and the instance actions, the error answers."""
import pytest
from drf_spectacular.generators import SchemaGenerator


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def _op(schema, path, method="get"):
    return schema["paths"][path][method]


@pytest.mark.parametrize("path", ["/api/v1/contacts/", "/api/v1/groups/", "/api/v1/group-members/",
                                  "/api/v1/instance-monitors/", "/api/v1/contacts/{id}/"])
def test_shard_lists_declare_the_required_instance(schema, path):
    params = {p["name"]: p for p in _op(schema, path).get("parameters", [])}
    assert params["instance"]["required"] is True and params["instance"]["in"] == "query"


def test_messages_is_a_keyset_page(schema):
    ref = _op(schema, "/api/v1/messaging/messages/")["responses"]["200"]["content"]["application/json"]["schema"]
    page = schema["components"]["schemas"][ref["$ref"].rsplit("/", 1)[1]]
    assert set(page["properties"]) == {"results", "next_after"}


def test_instance_actions_declare_what_they_answer(schema):
    restart = _op(schema, "/api/v1/instances/{id}/restart/", "post")["responses"]
    assert "202" in restart and "200" not in restart
    pushed = _op(schema, "/api/v1/instances/{id}/push-config/", "post")["responses"]["200"]
    name = pushed["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][name]["properties"]) == {"ok", "applied"}


def test_error_answers_are_documented(schema):
    send = _op(schema, "/api/v1/messaging/messages/send/", "post")["responses"]
    assert {"400", "401", "403", "409", "429", "502", "503"} <= set(send)
    detail = _op(schema, "/api/v1/users/{id}/")["responses"]
    assert {"401", "403", "404", "503"} <= set(detail)


def test_the_endpoint_action_declares_its_body_and_answer(schema):
    op = _op(schema, "/api/v1/instances/{id}/endpoint/", "post")
    assert {"200", "400", "403", "404", "409"} <= set(op["responses"])
    name = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    answer = schema["components"]["schemas"][name]["properties"]
    assert {"moved", "rekeyed", "token_withheld", "pushed", "instance"} <= set(answer)
    body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert "token" in schema["components"]["schemas"][body]["properties"]


def test_list_parameters_are_the_ones_the_lists_accept(schema):
    """A parameter the schema offers is one the list accepts (issue 12: `?search=` was declared
    on lists that refuse it; any `?ordering=` text and `?limit=` number were declared)."""
    sessions = {p["name"]: p for p in _op(schema, "/api/v1/auth/sessions/").get("parameters", [])}
    assert "search" not in sessions
    instances = {p["name"]: p for p in _op(schema, "/api/v1/instances/")["parameters"]}
    assert "search" in instances
    assert set(instances["ordering"]["schema"]["enum"]) == {
        t for f in ("id", "name", "status", "last_heartbeat", "created_at") for t in (f, f"-{f}")}
    assert instances["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 500}
    assert "404" in _op(schema, "/api/v1/instances/")["responses"]  # a forged cursor
