"""Instance configuration: typed values, encrypted secrets (`instance_configs`)."""
from __future__ import annotations

import decimal
import json
import math
import secrets

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from wework.db.fields import field_cipher

from ..models import (
    ConfigType,
    InstanceConfig,
)
from .base import WEBHOOK_SECRET_KEY

# ---------------------------------------------------------------------------------------------
# Typed configuration values
# ---------------------------------------------------------------------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# Numbers are exact in a double (the instance reads JSON) well beyond this.
NUMBER_LIMIT = 10**15


def _reject_constant(name):
    """json.loads' parse_constant: NaN, Infinity and -Infinity are not standard JSON."""
    raise ValueError(_("%(name)s is not standard JSON") % {"name": name})


def _finite_float(text):
    """json.loads' parse_float: 1e999 would be an infinity."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(_("%(value)s is too large a number") % {"value": text})
    return number


def parse_config_value(config_type, raw):
    """The Python value of a stored (clear) text value; ValidationError when it does not fit."""
    if raw is None:
        return None
    if config_type == ConfigType.NUMBER:
        try:
            number = decimal.Decimal(str(raw).strip())
        except decimal.InvalidOperation:
            raise ValidationError(_("“%(value)s” is not a number.") % {"value": raw}) from None
        if not number.is_finite():
            raise ValidationError(_("“%(value)s” is not a number.") % {"value": raw})
        if abs(number) > NUMBER_LIMIT:
            raise ValidationError(_("“%(value)s” is out of range: numbers lie between -1e15 and "
                                    "1e15.") % {"value": raw})
        return int(number) if number == number.to_integral_value() else float(number)
    if config_type == ConfigType.BOOLEAN:
        text = str(raw).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ValidationError(_("“%(value)s” is not a boolean (true/false).") % {"value": raw})
    if config_type == ConfigType.JSON:
        if not isinstance(raw, str):
            return raw
        try:
            return json.loads(raw, parse_constant=_reject_constant, parse_float=_finite_float)
        except RecursionError:
            raise ValidationError(_("Not valid JSON: %(error)s") % {"error": _("nested too deeply")}) from None
        except ValueError as exc:
            raise ValidationError(_("Not valid JSON: %(error)s") % {"error": exc}) from None
    if config_type == ConfigType.STRING:
        return str(raw)
    raise ValidationError(_("Unknown configuration type “%(type)s”.") % {"type": config_type})


def format_config_value(config_type, value):
    """The text stored for a Python value (validated against the type)."""
    if value is None:
        return None
    if config_type == ConfigType.JSON:
        if isinstance(value, str):
            parse_config_value(config_type, value)
            return value
        try:
            return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
        except ValueError as exc:
            raise ValidationError(_("Not valid JSON: %(error)s") % {"error": exc}) from None
    if config_type == ConfigType.BOOLEAN:
        return "true" if parse_config_value(config_type, value) else "false"
    if config_type == ConfigType.NUMBER:
        return str(parse_config_value(config_type, value))
    return str(value)


def encrypt_text(text):
    return field_cipher().encrypt(text.encode("utf-8")).decode("ascii")


def decrypt_text(token):
    return field_cipher().decrypt(token.encode("ascii")).decode("utf-8")


def set_config(instance, key, value, *, config_type=ConfigType.STRING, encrypted=False,
               system=False, description=None):
    """Create or update one configuration value (encrypted at rest when `encrypted`)."""
    text = format_config_value(config_type, value)
    if encrypted and text is not None:
        text = encrypt_text(text)
    defaults = {
        "config_value": text,
        "config_type": config_type,
        "is_encrypted": encrypted,
        "is_system": system,
    }
    if description is not None:
        defaults["description"] = description
    config, _created = InstanceConfig.objects.update_or_create(
        instance=instance, config_key=key, defaults=defaults
    )
    if key == WEBHOOK_SECRET_KEY:
        transaction.on_commit(forget_secrets)
    return config


def config_value(config):
    """The clear Python value of a config row (decrypted when encrypted)."""
    raw = config.config_value
    if raw is None:
        return None
    if config.is_encrypted:
        raw = decrypt_text(raw)
    return parse_config_value(config.config_type, raw)


def get_config(instance, key, default=None):
    config = InstanceConfig.objects.filter(instance=instance, config_key=key).first()
    if config is None or config.config_value is None:
        return default
    return config_value(config)


def new_secret():
    return secrets.token_urlsafe(32)


# Webhook secrets are cached in process memory (never in Redis) for SECRET_CACHE_SECONDS
# (intake reads them for every delivery); setting a secret forgets the cache at once.
_SECRETS: dict = {}
SECRET_CACHE_SECONDS = 10.0


def forget_secrets():
    _SECRETS.clear()
