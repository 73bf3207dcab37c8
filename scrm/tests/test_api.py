"""scrm's API: bulk tagging, segments and their count, opt-outs, rules with sensitive words, under
the platform's object permissions."""
import pytest

from accounts.services.permissions import grant_instance
from scrm.models import ContactTag, OptOut, Segment, WelcomeMessage
from scrm.services import optouts
from scrm.tests.factories import SensitiveWordFactory, TagFactory

pytestmark = pytest.mark.django_db(transaction=True)
API = "/api/v1/scrm"


@pytest.fixture
def api(world, api_client_for):
    return api_client_for(world.admin)


@pytest.fixture
def operator(world, django_user_model):
    def make(*perms, instance=None):
        n = django_user_model.objects.count()
        user = django_user_model.objects.create_user(f"op{n}", f"op{n}@example.com", "pw-operator-123")
        grant_instance(user, instance or world.instance, list(perms), granted_by=world.admin)
        return user

    return make


def test_bulk_tag_and_untag(world, api):
    TagFactory(name="vip")
    body = {"account": world.account.pk, "contacts": world.contacts[:3], "tags": ["vip"]}
    answer = api.post(f"{API}/contact-tags/add/", body, format="json")
    assert answer.status_code == 200, answer.content
    assert answer.json() == {"changed": 3}
    assert "vip" in world.column_tags(world.contacts[2])
    listed = api.get(f"{API}/contact-tags/", {"account": world.account.pk}).json()["results"]
    assert {row["contact_wxid"] for row in listed} == set(world.contacts[:3])
    answer = api.post(f"{API}/contact-tags/remove/", {**body, "contacts": world.contacts[:1]}, format="json")
    assert answer.json() == {"changed": 1}
    assert "vip" not in (world.column_tags(world.contacts[0]) or [])


def test_tagging_errors_are_400_with_fields(world, api):
    TagFactory(name="vip")
    answer = api.post(f"{API}/contact-tags/add/", {"account": world.account.pk, "contacts": ["ghost"],
                                                   "tags": ["vip", "nope"]}, format="json")
    assert answer.status_code == 400 and "nope" in answer.json()["tags"][0]
    answer = api.post(f"{API}/contact-tags/add/", {"account": world.account.pk, "contacts": ["ghost"],
                                                   "tags": ["vip"]}, format="json")
    assert answer.status_code == 400 and "ghost" in answer.json()["contacts"][0]
    answer = api.post(f"{API}/contact-tags/add/", {"account": world.account.pk, "tags": ["vip"]}, format="json")
    assert answer.status_code == 400 and "contacts" in answer.json()
    assert not ContactTag.objects.exists()


def test_tag_ids_and_accounts_beyond_a_bigint_are_unknown_not_a_500(world, api):
    """2**70 cannot be bound by SQLite (OverflowError): it names no row, so it is refused as one."""
    too_big = 2 ** 70
    answer = api.post(f"{API}/contact-tags/add/", {"account": world.account.pk, "contacts": world.contacts[:1],
                                                   "tags": [too_big]}, format="json")
    assert answer.status_code == 400, answer.content
    assert str(too_big) in answer.json()["tags"][0]
    answer = api.post(f"{API}/contact-tags/add/", {"account": too_big, "contacts": world.contacts[:1],
                                                   "tags": ["vip"]}, format="json")
    assert answer.status_code == 400 and list(answer.json()) == ["account"], answer.content
    assert not ContactTag.objects.exists()


def test_tagging_needs_the_permission_on_the_instance(world, operator, api_client_for):
    from instances.tests.factories import WeworkInstanceFactory

    TagFactory(name="vip")
    body = {"account": world.account.pk, "contacts": world.contacts[:1], "tags": ["vip"]}
    elsewhere = operator("scrm.add_contacttag", "scrm.view_contacttag", instance=WeworkInstanceFactory())
    assert api_client_for(elsewhere).post(f"{API}/contact-tags/add/", body, format="json").status_code == 404
    viewer = operator("scrm.view_contacttag")
    assert api_client_for(viewer).post(f"{API}/contact-tags/add/", body, format="json").status_code == 403
    tagger = operator("scrm.add_contacttag", "scrm.view_contacttag")
    assert api_client_for(tagger).post(f"{API}/contact-tags/add/", body, format="json").status_code == 200
    assert ContactTag.objects.count() == 1


def test_segment_with_count(world, api):
    TagFactory(name="vip")
    api.post(f"{API}/contact-tags/add/", {"account": world.account.pk, "contacts": world.contacts[:4],
                                          "tags": ["vip"]}, format="json")
    answer = api.post(f"{API}/segments/", {"name": "VIP", "instance": world.instance.pk, "tags_all": ["vip"]},
                      format="json")
    assert answer.status_code == 201, answer.content
    segment = Segment.objects.get()
    assert segment.created_by == world.admin and segment.tags_all == ["vip"]
    assert api.get(f"{API}/segments/{segment.pk}/count/").json() == {"count": 4, "capped": False, "text": "4"}
    answer = api.post(f"{API}/segments/", {"name": "x", "instance": world.instance.pk, "tags_any": ["nope"]},
                      format="json")
    assert answer.status_code == 400 and "nope" in str(answer.json()["tags_any"])


def test_tag_colour_must_be_hex(world, api):
    group = api.post(f"{API}/tag-groups/", {"name": "G"}, format="json").json()["id"]
    for color in ("notacolor", "#12345", "#GGGGGG", "red", "#1234567"):
        answer = api.post(f"{API}/tags/", {"group": group, "name": "t", "color": color}, format="json")
        assert answer.status_code == 400 and list(answer.json()) == ["color"], (color, answer.content)
    answer = api.post(f"{API}/tags/", {"group": group, "name": "t", "color": "#1E90ff"}, format="json")
    assert answer.status_code == 201, answer.content
    assert api.patch(f"{API}/tags/{answer.json()['id']}/", {"color": "blue"}, format="json").status_code == 400
    assert api.post(f"{API}/tags/", {"group": group, "name": "u"}, format="json").status_code == 201


@pytest.mark.parametrize("after, before", [("added_after", "added_before"),
                                           ("last_message_after", "last_message_before")])
def test_segment_date_ranges_end_after_they_start(world, api, after, before):
    body = {"name": "s", "instance": world.instance.pk,
            after: "2026-05-02T00:00:00Z", before: "2026-05-01T00:00:00Z"}
    answer = api.post(f"{API}/segments/", body, format="json")
    assert answer.status_code == 400 and list(answer.json()) == [before], answer.content
    assert not Segment.objects.exists()
    answer = api.post(f"{API}/segments/", {**body, before: "2026-05-03T00:00:00Z"}, format="json")
    assert answer.status_code == 201, answer.content
    pk = answer.json()["id"]
    answer = api.patch(f"{API}/segments/{pk}/", {after: "2026-06-01T00:00:00Z"}, format="json")
    assert answer.status_code == 400 and list(answer.json()) == [before], answer.content


def test_opt_outs_listed_and_opted_back_in(world, api):
    optouts.opt_out(world.account, world.contacts[0], keyword="TD")
    rows = api.get(f"{API}/opt-outs/", {"opted_out": "true"}).json()["results"]
    assert [r["contact_wxid"] for r in rows] == [world.contacts[0]]
    answer = api.post(f"{API}/opt-outs/{rows[0]['id']}/opt_in/")
    assert answer.status_code == 200 and answer.json()["is_opted_out"] is False
    answer = api.post(f"{API}/opt-outs/opt_out/", {"account": world.account.pk, "contacts": world.contacts[1:3]},
                      format="json")
    assert answer.json() == {"changed": 2}
    assert OptOut.objects.filter(is_opted_out=True).count() == 2


@pytest.mark.parametrize("contacts,fragment", [
    (["nobody-xyz-2"], "nobody-xyz-2"),
    ([1, 2], "Not a valid string."),
])
def test_opting_out_takes_only_the_accounts_contacts(world, api, contacts, fragment):
    answer = api.post(f"{API}/opt-outs/opt_out/", {"account": world.account.pk, "contacts": contacts},
                      format="json")
    assert answer.status_code == 400, answer.content
    assert list(answer.json()) == ["contacts"] and fragment in str(answer.json()["contacts"])
    assert not OptOut.objects.exists()


@pytest.mark.parametrize("path,field", [("welcome-messages", "content"), ("auto-replies", "reply")])
@pytest.mark.parametrize("text,fragment", [
    ("{{ bad", "Unclosed '{{' at position 0"),
    ("hi {{no_such_var}}", "no_such_var"),
    ("a\u0000b", "ull characters"),
])
def test_rule_texts_are_checked_as_their_send_checks_them(world, api, path, field, text, fragment):
    body = {"account": world.account.pk, field: text, **({"keyword": "x"} if path == "auto-replies" else {})}
    answer = api.post(f"{API}/{path}/", body, format="json")
    assert answer.status_code == 400, answer.content
    assert list(answer.json()) == [field] and fragment in answer.json()[field][0]
    body[field] = "Hi {{ receiver_name }}"
    assert api.post(f"{API}/{path}/", body, format="json").status_code == 201


def test_rules_refuse_sensitive_words(world, api):
    SensitiveWordFactory(word="返现")
    answer = api.post(f"{API}/welcome-messages/", {"account": world.account.pk, "content": "关注返现"}, format="json")
    assert answer.status_code == 400 and "返现" in answer.json()["content"][0]
    answer = api.post(f"{API}/auto-replies/", {"account": world.account.pk, "keyword": "x", "reply": "返现!"},
                      format="json")
    assert answer.status_code == 400 and "返现" in answer.json()["reply"][0]
    answer = api.post(f"{API}/welcome-messages/", {"account": world.account.pk, "content": "Hello"}, format="json")
    assert answer.status_code == 201 and WelcomeMessage.objects.get().created_by == world.admin
    answer = api.post(f"{API}/welcome-messages/", {"account": world.account.pk, "content": "Again"}, format="json")
    assert answer.status_code == 400  # one contact welcome per account


def test_send_task_with_sensitive_word_is_400(world, api):
    SensitiveWordFactory(word="casino")
    answer = api.post("/api/v1/messaging/tasks/", {
        "account": world.account.pk, "message_type": "text", "content": {"text": "Best Casino"},
        "receivers": [{"wxid": w} for w in world.contacts[:2]]}, format="json")
    assert answer.status_code == 400, answer.content
    assert "casino" in str(answer.json())


def test_contacts_filtered_by_tags(world, api):
    TagFactory(name="vip"), TagFactory(name="lead")
    c = world.contacts
    api.post(f"{API}/contact-tags/add/", {"account": world.account.pk, "contacts": c[:4], "tags": ["vip"]},
             format="json")
    api.post(f"{API}/contact-tags/add/", {"account": world.account.pk, "contacts": c[2:6], "tags": ["lead"]},
             format="json")
    optouts.opt_out(world.account, c[3])

    def listed(**params):
        answer = api.get(f"{API}/contacts/", {"instance": world.instance.pk, "limit": 100, **params})
        assert answer.status_code == 200, answer.content
        return {row["wxid"] for row in answer.json()["results"]}

    assert listed(tags_all="vip,lead") == set(c[2:4])
    assert listed(tags_any="vip,lead") == set(c[:6])
    assert listed(tags_none="vip") == set(c[4:])
    assert listed(tags_all="vip", opted_out="false") == set(c[:3])
    assert api.get(f"{API}/contacts/", {"instance": world.instance.pk, "opted_out": "maybe"}).status_code == 400
    assert api.get(f"{API}/contacts/", {"instance": world.instance.pk, "tagz": "vip"}).status_code == 400


def test_template_with_sensitive_word_is_400(world, api):
    from messaging.models import MessageTemplate

    SensitiveWordFactory(word="casino")
    answer = api.post("/api/v1/messaging/templates/", {
        "name": "promo", "message_type": "text", "content": '{"text": "Visit our CASINO"}'}, format="json")
    assert answer.status_code == 400, answer.content
    assert "casino" in str(answer.json()["content"])
    assert not MessageTemplate.objects.exists()
