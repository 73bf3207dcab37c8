"""Where an instance's secrets go (issue 12): its API URL and proxy decide where the platform
sends its bearer token and webhook secret. Changing them needs the change permission on every
instance (a role, not an instance grant) and sudo mode; an operator with a grant on one
instance cannot point it at an address they control."""
import pytest
from django.test import Client

from instances.models import WeworkInstance
from wework.testing.fixtures import login_verified

pytestmark = pytest.mark.django_db


def _post_data(client, instance, **changes):
    page = client.get(f"/admin/instances/weworkinstance/{instance.pk}/change/")
    assert page.status_code == 200, page.status_code
    form = page.context["adminform"].form
    data = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        if value is None or value is False:
            continue
        data[name] = value.pk if hasattr(value, "pk") else value
    data.update(changes)
    return data


def test_an_instance_grant_cannot_move_the_instances_endpoint(personas):
    client = Client()
    login_verified(client, personas.users["object_grantee"], sudo=True)
    inst = personas.a
    before = inst.api_url
    data = _post_data(client, inst, api_url="http://attacker.example.com:8080")
    response = client.post(f"/admin/instances/weworkinstance/{inst.pk}/change/", data)
    assert response.status_code == 200  # the form again, with the error
    assert "api_url" in response.context["adminform"].form.errors
    assert WeworkInstance.objects.get(pk=inst.pk).api_url == before
    # other fields stay editable for the grantee
    data = _post_data(client, inst, description="renamed by the grantee")
    response = client.post(f"/admin/instances/weworkinstance/{inst.pk}/change/", data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert WeworkInstance.objects.get(pk=inst.pk).description == "renamed by the grantee"


def test_moving_the_endpoint_needs_sudo_even_for_a_super_admin(personas):
    client = Client()
    login_verified(client, personas.users["super_admin"], sudo=True)
    inst = personas.a
    data = _post_data(client, inst, proxy_host="proxy.example.com", proxy_port=3128)
    session = client.session
    session.pop("sudo_at", None)
    from accounts.services import otp as otp_services

    session.pop(otp_services.SUDO_SESSION_KEY, None)
    session.save()
    response = client.post(f"/admin/instances/weworkinstance/{inst.pk}/change/", data)
    assert response.status_code == 302 and "sudo" in response["Location"]
    assert WeworkInstance.objects.get(pk=inst.pk).proxy_host != "proxy.example.com"
    login_verified(client, personas.users["super_admin"], sudo=True)
    response = client.post(f"/admin/instances/weworkinstance/{inst.pk}/change/", data)
    assert response.status_code == 302 and "sudo" not in response["Location"]
    assert WeworkInstance.objects.get(pk=inst.pk).proxy_host == "proxy.example.com"
