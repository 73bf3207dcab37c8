"""Field validators of scrm's models (the admin's forms and the API's serializers run them)."""
from __future__ import annotations

import re

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

_COLOR = re.compile(r"#[0-9A-Fa-f]{6}")


def validate_color(value: str) -> None:
    """A tag's colour: "#RRGGBB" (blank: none)."""
    if value and not _COLOR.fullmatch(value):
        raise ValidationError(_("Enter a colour as #RRGGBB (for example #1E90FF)."), code="invalid_color")
