"""Where an instance's secrets are sent (issue 12): one service moves an instance (API URL,
proxy) for the admin, the API and the commands; it needs a role's permission and sudo mode,
re-keys the webhook secret and withholds the API token until a token is given for the new
address; no client sends the secrets to an address they were not given for; every move is
audited; transport failures read alike whatever listens at an address."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.test import Client

from instances import binding, services
from instances.client import InstanceClient
from instances.models import InstanceConfig, WeworkInstance
from monitoring.models import AuditLog
from simulator.testing import unused_port
from wework.testing.fixtures import grant_perms, login_verified, totp_code
from wework.testing.instances import SECRET, TOKEN

pytestmark = pytest.mark.django_db(transaction=True)


class Listener:
    """An HTTP server that is not an instance: records every request, answers `status` with
    `body` (or closes the connection with status None)."""

    def __init__(self, status=200, body=b"<html><title>internal</title></html>",
                 content_type="text/html"):
        self.requests = []
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                listener.requests.append((self.path, dict(self.headers), self.rfile.read(length)))
                if status is None:
                    self.close_connection = True
                    self.connection.close()
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener():
    started = []

    def make(**kw):
        server = Listener(**kw)
        started.append(server)
        return server

    yield make
    for server in started:
        server.close()


def _config(instance, key):
    return services.get_config(instance, key)


def _mover(**extra):
    """A user holding the endpoint permission through a role, with a second factor."""
    from accounts.tests.factories import UserFactory

    user = grant_perms(UserFactory(), services.CHANGE_ENDPOINT, "instances.view_weworkinstance",
                       "instances.change_weworkinstance", "instances.push_config")
    return user


def _api(user, *, code=None):
    from wework.testing.fixtures import api_client_for

    client = api_client_for(user)
    if code:
        client.credentials(HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"],
                           HTTP_X_OTP_CODE=code)
    return client


def test_an_instance_grant_cannot_move_its_instance_through_the_api(personas, listener):
    attacker = listener()
    client = personas.api_client("object_grantee")
    inst = personas.a
    response = client.post(f"/api/v1/instances/{inst.pk}/endpoint/", {"api_url": attacker.url},
                           format="json")
    assert response.status_code == 403
    assert WeworkInstance.objects.get(pk=inst.pk).api_url == inst.api_url
    response = client.post(f"/api/v1/instances/{personas.b.pk}/endpoint/", {"api_url": attacker.url},
                           format="json")
    assert response.status_code in (403, 404)  # sudo is checked before the object is looked up
    assert attacker.requests == []


def test_moving_through_the_api_needs_the_permission_and_sudo(registered, listener, otp):
    attacker = listener()
    user = _mover()
    device = otp.enroll(user)
    url = f"/api/v1/instances/{registered.pk}/endpoint/"
    refused = _api(user).post(url, {"api_url": attacker.url}, format="json")
    assert refused.status_code == 403 and "X-OTP-Code" in str(refused.json())
    assert WeworkInstance.objects.get(pk=registered.pk).api_url == registered.api_url
    # a role with the instance permissions but not this one: refused even in sudo mode
    from accounts.tests.factories import UserFactory

    operator = grant_perms(UserFactory(), "instances.view_weworkinstance",
                           "instances.change_weworkinstance", "instances.push_config")
    operator_code = totp_code(otp.enroll(operator))
    response = _api(operator, code=operator_code).post(url, {"api_url": attacker.url}, format="json")
    assert response.status_code == 403
    moved = _api(user, code=totp_code(device)).post(url, {"api_url": attacker.url}, format="json")
    assert moved.status_code == 200, moved.content
    body = moved.json()
    assert body["moved"] and body["rekeyed"] and body["token_withheld"] and not body["pushed"]
    assert body["instance"]["api_url"] == attacker.url and "token" not in body
    assert attacker.requests == []


def test_a_move_rekeys_the_secret_and_withholds_the_token_until_one_is_given(
        registered, listener, make_sim, simulator, admin_user):
    attacker = listener()
    assert _config(registered, "api_token") == TOKEN
    request = _sudo_request(admin_user)
    result = services.change_endpoint(registered, user=admin_user, request=request,
                                      api_url=attacker.url)
    assert result.moved and result.rekeyed and result.token_withheld and not result.pushed
    assert _config(registered, "api_token") is None
    new_secret = _config(registered, "webhook_secret")
    assert new_secret and new_secret != SECRET
    registered.refresh_from_db()
    # nothing leaves for the new address: no token, no secret
    with pytest.raises(services.ServiceError) as refused:
        services.push_config(registered)
    assert refused.value.code == "secrets_not_bound" and refused.value.status == 409
    with pytest.raises(services.ServiceError):
        services.restart_instance(registered)
    assert InstanceClient.for_instance(registered).token is None
    assert attacker.requests == []
    # the token of the instance at its new address: bound there, pushed with the new secret
    moved_to = make_sim(token="token-at-new-address")
    result = services.change_endpoint(registered, user=admin_user, request=request,
                                      api_url=moved_to.url, token="token-at-new-address")
    assert result.token_given and result.pushed, result.push_error
    assert result.rekeyed  # a secret that never left is replaced too (the address moved again)
    assert moved_to.config["webhook_secret"] == _config(registered, "webhook_secret")
    assert moved_to.config["webhook_secret"] not in (SECRET, new_secret)
    assert simulator.config["webhook_secret"] == SECRET  # the old address learnt nothing new
    assert attacker.requests == []


def test_an_address_changed_behind_the_services_back_gets_no_secret(registered, listener):
    attacker = listener()
    WeworkInstance.objects.filter(pk=registered.pk).update(api_url=attacker.url + "/v1")
    registered.refresh_from_db()
    with pytest.raises(services.ServiceError) as refused:
        services.push_config(registered)
    assert refused.value.code == "secrets_not_bound"
    # the dispatcher's client sends no token there either
    assert InstanceClient.for_instance(registered).token is None
    WeworkInstance.objects.filter(pk=registered.pk).update(proxy_host=attacker.url[7:].split(":")[0],
                                                           proxy_port=int(attacker.url.rsplit(":", 1)[1]))
    registered.refresh_from_db()
    assert InstanceClient.for_instance(registered).token is None
    assert attacker.requests == []


def test_the_binding_ignores_spelling_but_not_the_destination():
    assert binding.fingerprint("HTTP://Host:80/v1/") == binding.fingerprint("http://host")
    assert binding.fingerprint("http://host:8080") != binding.fingerprint("http://host")
    assert binding.fingerprint("http://host", "proxy", 3128) != binding.fingerprint("http://host")


def test_every_move_is_audited_without_secrets(registered, admin_user, listener):
    attacker = listener()
    services.change_endpoint(registered, user=admin_user, request=_sudo_request(admin_user),
                             api_url=attacker.url, proxy_password="p4ss", push=False)
    row = AuditLog.objects.filter(operation="instance.endpoint", resource_id=str(registered.pk)).latest("id")
    text = str(row.new_values)
    assert row.new_values["via"] == "api" and row.new_values["moved"] is True
    assert row.new_values["new"]["api_url"] == attacker.url
    assert TOKEN not in text and "p4ss" not in text and SECRET not in text


def test_the_command_moves_through_the_same_service(registered, make_sim):
    from django.core.management import call_command

    moved_to = make_sim(token="t2")
    call_command("register_instance", "--name", registered.name, "--api-url", moved_to.url,
                 "--token", "t2")
    assert _config(registered, "api_token") == "t2"
    secret = _config(registered, "webhook_secret")
    assert secret != SECRET and moved_to.config["webhook_secret"] == secret
    row = AuditLog.objects.filter(operation="instance.endpoint", resource_id=str(registered.pk)).latest("id")
    assert row.new_values["via"] == "command" and row.new_values["rekeyed"] is True


def test_the_secrets_keys_cannot_be_written_as_configuration(registered, admin_user):
    from wework.testing.fixtures import api_client_for

    InstanceConfig.objects.filter(instance=registered, config_key=binding.BINDING_KEY).delete()
    client = api_client_for(admin_user)
    for key in ("api_token", "webhook_secret", binding.BINDING_KEY):
        response = client.post("/api/v1/instance-configs/", {
            "instance": registered.pk, "config_key": key, "config_value": "http://x via direct"},
            format="json")
        assert response.status_code == 400, (key, response.content)
    assert not InstanceConfig.objects.filter(instance=registered, config_key=binding.BINDING_KEY).exists()


def test_the_admin_moves_through_the_service(registered, admin_user, listener):
    attacker = listener()
    client = Client()
    login_verified(client, admin_user, sudo=True)
    page = client.get(f"/admin/instances/weworkinstance/{registered.pk}/change/")
    form = page.context["adminform"].form
    data = {name: form.initial.get(name) for name in form.fields
            if form.initial.get(name) not in (None, False)}
    data = {k: (v.pk if hasattr(v, "pk") else v) for k, v in data.items()}
    data["api_url"] = attacker.url
    response = client.post(f"/admin/instances/weworkinstance/{registered.pk}/change/", data, follow=True)
    assert response.status_code == 200
    texts = [str(m) for m in response.context["messages"]]
    assert any("no secret" in t for t in texts), texts
    assert _config(registered, "api_token") is None and _config(registered, "webhook_secret") != SECRET
    assert AuditLog.objects.filter(operation="instance.endpoint", new_values__via="admin").exists()
    assert attacker.requests == []


@pytest.mark.parametrize("answer", [
    {"status": 401, "body": b"Unauthorized"},
    {"status": 500, "body": b"<h1>Internal Server Error</h1>"},
    {"status": 200, "body": b"+PONG\r\n", "content_type": "text/plain"},
    {"status": 404, "body": b"{\"error\": \"not found\"}", "content_type": "application/json"},
    {"status": 429, "body": b"slow down"},
    {"status": None},
])
def test_failures_read_alike_whatever_listens_on_the_port(admin_user, listener, answer):
    """A closed port, a service asking for a password, a web server's error page, another
    protocol: the same status, code and sentence, and the same text on the instance."""
    from instances.tests.factories import WeworkInstanceFactory
    from wework.testing.fixtures import api_client_for

    client = api_client_for(admin_user)

    def answers(url):
        inst = WeworkInstanceFactory(api_url=url, created_by=admin_user)
        response = client.post(f"/api/v1/instances/{inst.pk}/restart/", {}, format="json")
        inst.refresh_from_db()
        return response.status_code, response.json()["error"], inst.error_message

    closed = answers(f"http://127.0.0.1:{unused_port()}")
    other = answers(listener(**answer).url)
    assert other == closed
    assert closed[0] == 502 and closed[1]["code"] == "unreachable"


def _sudo_request(user):
    """A request in sudo mode for the service (as the admin and the API hand it)."""
    import time

    from django.test import RequestFactory

    from accounts.services import otp as otp_services

    request = RequestFactory().post("/")
    request.user = user
    request.session = {otp_services.SUDO_SESSION_KEY: int(time.time())}
    return request


def test_a_bad_endpoint_is_a_400_with_the_fields_message(registered, admin_user, otp):
    from wework.testing.fixtures import api_client_for

    client = api_client_for(admin_user)
    code = totp_code(otp.enroll(admin_user))
    url = f"/api/v1/instances/{registered.pk}/endpoint/"
    response = client.post(url, {"api_url": "ftp://x", "proxy_host": "proxy.lan"}, format="json",
                           HTTP_X_OTP_CODE=code)
    assert response.status_code == 400, response.content
    assert {"api_url", "proxy_port"} & set(response.json())
    assert _config(registered, "api_token") == TOKEN  # nothing changed
    assert client.post(url, {}, format="json", HTTP_X_OTP_CODE=code).status_code in (400, 403)
