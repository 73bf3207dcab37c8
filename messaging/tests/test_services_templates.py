"""Templates (services/templates.py): validated when saved, previewed with defaults and
missing values shown, only a superuser marks one as a system template."""
import pytest

from messaging.errors import MessagingInvalid
from messaging.models import MessageTemplate
from messaging.services import templates

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")


def test_saved_template_is_normalized_and_previewed(admin):
    tmpl = templates.save_template(admin, {
        "name": "Hi", "message_type": "text", "content": "Hi {{ who }} from {{ city }}",
        "variables": ["who", {"name": "city", "default": "Beijing"}], "tags": ["a"]})
    assert tmpl.variables[0] == {"name": "who", "label": "who", "default": None, "required": True}
    assert tmpl.preview_content == "Hi «who» from Beijing" and tmpl.template_uuid
    preview = templates.preview_template(tmpl, {"who": "Wang"})
    assert preview["text"] == "Hi Wang from Beijing" and preview["missing"] == []
    assert templates.preview_template(tmpl)["missing"] == ["who"]


@pytest.mark.parametrize("data,field", [
    ({"name": "", "message_type": "text", "content": "x"}, "name"),
    ({"name": "T", "message_type": "sticker", "content": "x"}, "message_type"),
    ({"name": "T", "message_type": "text", "content": "{{ a.b }}"}, "content"),
    ({"name": "T", "message_type": "text", "content": "{{ other }}"}, "content"),
    ({"name": "T", "message_type": "text", "content": "x", "variables": ["a", "a"]}, "variables"),
    ({"name": "T", "message_type": "text", "content": "x", "tags": "a,b"}, "tags"),
    ({"name": "T", "message_type": "link", "content": {"title": "{{ t }}"}, "variables": ["t"]}, "content"),
    ({"name": "T", "message_type": "link", "content": {"url": "https://x.example", "title": [1, 2]}}, "content"),
    ({"name": "T", "message_type": "text", "content": "x", "thumbnail_url": "javascript:alert(1)"},
     "thumbnail_url"),
    ({"name": "T", "message_type": "text", "content": "{{ a }}", "variables": {"a": {"b": [1]}}}, "variables"),
    ({"name": "T", "message_type": "text", "content": "x" * 2_000_000}, "content"),
])
def test_invalid_templates_name_the_field(admin, data, field):
    with pytest.raises(MessagingInvalid) as exc:
        templates.save_template(admin, data)
    assert list(exc.value.fields) == [field]
    assert not MessageTemplate.all_objects.exists()


def test_only_a_superuser_marks_system_templates(admin, django_user_model):
    staff = django_user_model.objects.create_user("staff", "s@example.com", "pw-staff-123")
    assert templates.save_template(admin, {"name": "A", "message_type": "text", "content": "x",
                                           "is_system": True}).is_system
    assert not templates.save_template(staff, {"name": "B", "message_type": "text", "content": "x",
                                               "is_system": True}).is_system


def test_compose_offers_enabled_templates_in_order(admin):
    second = templates.save_template(admin, {"name": "B", "message_type": "text", "content": "x", "sort_order": 2})
    first = templates.save_template(admin, {"name": "A", "message_type": "text", "content": "x", "sort_order": 1})
    templates.save_template(admin, {"name": "Off", "message_type": "text", "content": "x", "status": 0})
    assert list(templates.compose_templates()) == [first, second]


def test_use_is_counted(admin):
    tmpl = templates.save_template(admin, {"name": "A", "message_type": "text", "content": "x"})
    templates.mark_template_used(tmpl.pk)
    tmpl.refresh_from_db()
    assert tmpl.use_count == 1 and tmpl.last_used_at is not None


@pytest.mark.parametrize("text,fragment", [
    ("{{ bad", "Unclosed '{{' at position 0"),
    ("hi {{no_such_var}}", "Unknown template variables: no_such_var"),
    ("a\x00b", "null characters"),
    ("x" * 2001, "limit"),
    ("", "required"),
])
def test_plain_texts_are_checked_as_their_send_checks_them(text, fragment):
    with pytest.raises(MessagingInvalid) as exc:
        templates.validate_plain_text(text)
    assert list(exc.value.fields) == ["content"] and fragment in exc.value.fields["content"][0]


def test_plain_texts_may_use_the_built_in_variables():
    text = "Hi {{ receiver_name }} ({{ receiver_remark }}, {{receiver_wxid}})"
    assert templates.validate_plain_text(text) == text
