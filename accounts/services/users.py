"""User accounts: who may create, change, disable, unlock and delete which user.

The rules live here once; the admin (change form and bulk actions), the API and commands call
these functions. `actor` is the person acting (None: the system, a command).

* Only a super administrator may change (or unlock, disable, delete) a super administrator, or
  make someone one.
* Nobody changes their own status or deletes themselves.
* Bulk status changes skip the rows the actor may not change and say how many they changed;
  they are audited row by row (`audited_update`), as a save would be.
"""
from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Field
from django.utils.translation import gettext as _

from accounts.models import User, UserStatus
from accounts.services import auth as auth_services
from wework.db.models import SoftDeleteQuerySet
from wework.errors import DomainError, PermissionDeniedError


def _is_super(actor: User | None) -> bool:
    return actor is None or actor.is_superuser


def check_change(actor: User | None, target: User, fields: Iterable[str] = ()) -> None:
    """Raise PermissionDeniedError unless `actor` may change `fields` of `target`."""
    fields = set(fields)
    if target.is_superuser and not _is_super(actor):
        raise PermissionDeniedError(
            _("Only a super administrator may change a super administrator."))
    if "is_superuser" in fields and not _is_super(actor):
        raise PermissionDeniedError(_("Only a super administrator may make a super administrator."))
    if "status" in fields and actor is not None and target.pk == actor.pk:
        raise PermissionDeniedError(_("You may not change your own status."))


def changeable(actor: User | None, users: SoftDeleteQuerySet) -> SoftDeleteQuerySet:
    """The users of `users` whose status `actor` may change (bulk actions skip the others)."""
    if actor is None:
        return users
    users = users.exclude(pk=actor.pk)
    return users if actor.is_superuser else users.filter(is_superuser=False)


CONTACT_FIELDS = ("email", "phone", "avatar_url")


def check_contact_fields(user: User) -> None:
    """Raise a DomainError naming each of email, phone and avatar URL that its validator refuses
    (accounts.validators; the model's forms and serializers run the same validators)."""
    errors: dict[str, list[str]] = {}
    for name in CONTACT_FIELDS:
        field = User._meta.get_field(name)
        assert isinstance(field, Field)
        value = getattr(user, name)
        if value in field.empty_values:
            continue
        try:
            field.run_validators(value)
        except ValidationError as exc:
            errors[name] = list(exc.messages)
    if errors:
        raise DomainError(fields=errors)


@transaction.atomic
def create_user(actor: User | None, user: User, password: str | None = None) -> User:
    """Save a new user with `password` (validated; None: no usable password)."""
    check_change(actor, user, ["is_superuser"] if user.is_superuser else [])
    check_contact_fields(user)
    if password:
        try:
            validate_password(password, user)
        except ValidationError as exc:
            raise DomainError(fields={"password": list(exc.messages)}) from None
        user.set_password(password)
    else:
        user.set_unusable_password()
    user.save()
    return user


@transaction.atomic
def save_user(actor: User | None, user: User, changed: Iterable[str]) -> User:
    """Save the changes made on `user` (`changed`: the names of the changed fields)."""
    check_change(actor, User.all_objects.get(pk=user.pk) if user.pk else user, changed)
    check_contact_fields(user)
    user.save()
    return user


def set_status(actor: User | None, users: SoftDeleteQuerySet, status: int) -> int:
    """Disable or enable users in bulk; enabling also lifts a lock. Returns how many changed."""
    changes: dict[str, object] = {"status": status}
    if status == UserStatus.ENABLED:
        changes.update(locked_until=None, login_fail_count=0)
    return changeable(actor, users).exclude(**changes).audited_update(**changes)


def unlock(actor: User | None, users: Iterable[User]) -> int:
    """Unlock locked users; returns how many were unlocked."""
    count = 0
    for user in users:
        if user.status != UserStatus.LOCKED:
            continue
        check_change(actor, user)
        auth_services.unlock(user)
        count += 1
    return count


@transaction.atomic
def delete_user(actor: User | None, user: User) -> None:
    """Soft-delete a user (their sessions stop working at once: inactive users are refused)."""
    if actor is not None and user.pk == actor.pk:
        raise PermissionDeniedError(_("You may not delete this user."))
    if user.is_superuser and not _is_super(actor):
        raise PermissionDeniedError(_("You may not delete this user."))
    user.delete()


def may_delete(actor: User, user: User) -> bool:
    return user.pk != actor.pk and (actor.is_superuser or not user.is_superuser)
