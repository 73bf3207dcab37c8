"""Text the Chinese UI shows that does not come from the project's own gettext calls."""
import pytest
from django.utils import translation


def test_blank_choice_label_is_translated():
    from django.db.models.fields import BLANK_CHOICE_LABEL

    with translation.override("zh-hans"):
        assert str(BLANK_CHOICE_LABEL) != "- Select an option -"


@pytest.mark.django_db
def test_system_role_names_follow_the_language():
    from accounts.models import Role
    from accounts.services.permissions import seed_roles

    seed_roles()
    operator = Role.objects.get(name="operator")
    custom = Role.objects.create(name="custom", display_name="Operator")
    with translation.override("zh-hans"):
        assert str(operator) != "Operator"
        assert operator.description_label() != operator.description
        assert str(custom) == "Operator"  # a role the users named themselves is shown as is
    with translation.override("en"):
        assert str(operator) == "Operator"
