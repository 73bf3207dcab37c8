"""Field validators of users' contact details, shared by the model (admin forms, the API's
serializers) and accounts.services.users (every save through the service)."""
from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.utils.translation import gettext_lazy as _

__all__ = ["validate_avatar_url", "validate_email", "validate_phone"]

_PHONE = re.compile(r"\+?[0-9](?:[0-9 \-]*[0-9])?")
PHONE_DIGITS = (5, 20)


def validate_phone(value: str) -> None:
    """An international phone number: 5 to 20 digits, an optional leading +, spaces or dashes
    between the digits ("+86 138-0000-0000")."""
    digits = sum(ch.isdigit() for ch in value or "")
    if not _PHONE.fullmatch(value or "") or not PHONE_DIGITS[0] <= digits <= PHONE_DIGITS[1]:
        raise ValidationError(
            _("Enter a phone number: 5 to 20 digits, with an optional leading + and spaces or "
              "dashes between them."),
            code="invalid_phone",
        )


def validate_avatar_url(value: str) -> None:
    """Only http(s) URLs: a javascript: or data: URL shown as an image source is a hazard."""
    URLValidator(schemes=["http", "https"], message=_("Enter an http:// or https:// URL."))(value)
