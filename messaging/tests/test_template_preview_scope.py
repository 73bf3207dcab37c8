"""QA F16: the template preview follows the compose page's rule: an operator who may compose
(instance grant only) previews the templates compose offers; nothing else is widened."""
import pytest
from django.urls import reverse

from messaging import services
from messaging.models import TemplateStatus

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def operator(world, django_user_model):
    from accounts.services.permissions import grant_instance

    user = django_user_model.objects.create_user("operator", "op@example.com", "pw-operator-123")
    grant_instance(user, world.instance, ["messaging.send_message", "messaging.view_messagetask"],
                   granted_by=world.admin)
    return user


def test_scoped_operator_previews_what_compose_offers(client, world, operator, django_user_model):
    offered = services.save_template(world.admin, {"name": "Hi", "message_type": "text",
                                                   "content": "Hi {{ who }}", "variables": ["who"]})
    disabled = services.save_template(world.admin, {"name": "Old", "message_type": "text", "content": "x",
                                                    "status": TemplateStatus.DISABLED})
    client.force_login(operator)
    compose = client.get(reverse("messaging:compose"))
    assert compose.status_code == 200
    assert offered in compose.context["form"].fields["template"].queryset
    r = client.get(reverse("messaging:template_preview", args=[offered.pk]), {"values": "who=Wang"})
    assert r.status_code == 200 and "Hi Wang" in r.content.decode()
    # not offered by compose: not found for this user
    assert client.get(reverse("messaging:template_preview", args=[disabled.pk])).status_code == 404
    # nothing else widened: the template admin stays closed (the API reads what compose offers,
    # test_api_q2_small.py)
    assert client.get(reverse("admin:messaging_messagetemplate_changelist")).status_code in (302, 403)
    assert client.get(f"/api/v1/messaging/templates/{disabled.pk}/").status_code == 404
    # a user who may not compose gets no preview
    outsider = django_user_model.objects.create_user("outsider", "o@example.com", "pw-outsider-123")
    client.force_login(outsider)
    assert client.get(reverse("messaging:template_preview", args=[offered.pk])).status_code == 403
