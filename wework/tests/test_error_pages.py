"""A page that does not exist: the admin's frame with a way back, in the reader's language
(Django's default was a bare, untranslated "Not Found"); API paths answer JSON."""
import pytest


@pytest.mark.django_db
@pytest.mark.parametrize("lang, title, back", [("en", "Page not found", "Back to the home page"),
                                               ("zh-hans", "页面不存在", "返回首页")])
def test_missing_page_keeps_the_admin_frame_in_the_readers_language(verified_admin_client, settings, lang,
                                                                    title, back):
    settings.DEBUG = False
    response = verified_admin_client.get("/admin/no-such-page/", HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 404
    body = response.content.decode()
    assert title in body and back in body and 'id="not-found-message"' in body
    assert 'id="header"' in body  # the admin's header: the user's links, the alert badge
    assert "Not Found" not in body


@pytest.mark.django_db
def test_missing_api_path_answers_json(client, settings):
    settings.DEBUG = False
    response = client.get("/api/v1/no-such-endpoint/")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


@pytest.mark.django_db
def test_the_bare_host_leads_to_the_admin_and_its_login(client):
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    login = client.get("/", follow=True)
    assert login.status_code == 200 and login.redirect_chain[-1][0].startswith("/admin/login/")
