"""FilterSets of accounts on the API lists: each filter narrows the list, a misspelt one is a 400."""
import pytest

from accounts.models import LoginResult, UserStatus
from accounts.tests.factories import LoginLogFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db


def _ids(response):
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_user_filters(verified_admin_client):
    disabled = UserFactory(status=UserStatus.DISABLED, email_verified=True)
    UserFactory()
    assert _ids(verified_admin_client.get("/api/v1/users/", {"status": 0})) == {disabled.pk}
    assert disabled.pk in _ids(verified_admin_client.get("/api/v1/users/", {"email_verified": "true"}))
    assert _ids(verified_admin_client.get("/api/v1/users/", {"username": disabled.username})) == {disabled.pk}
    bad = verified_admin_client.get("/api/v1/users/", {"usrename": "x"})
    assert bad.status_code == 400 and "usrename" in bad.json()


def test_role_and_login_log_filters(verified_admin_client):
    role = RoleFactory(require_two_factor=True)
    ids = _ids(verified_admin_client.get("/api/v1/roles/", {"require_two_factor": "true",
                                                             "is_system": "false"}))
    assert ids == {role.pk}
    failed = LoginLogFactory(success=False, result=LoginResult.BAD_CREDENTIALS, ip_address="10.9.8.7")
    LoginLogFactory()
    assert _ids(verified_admin_client.get("/api/v1/login-logs/", {"ip_address": "10.9.8.7"})) == {failed.pk}
