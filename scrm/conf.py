"""scrm settings with their defaults: `settings.SCRM[KEY]`, else the default below."""
from django.conf import settings
from django.utils.translation import gettext_lazy as _

DEFAULTS = {
    # One auto-reply per contact and account within this many seconds.
    "AUTO_REPLY_INTERVAL_S": 300,
    # At most this many auto-replies to one contact of an account per hour (another bot
    # answering ours is cut off here at the latest).
    "AUTO_REPLY_MAX_PER_HOUR": 5,
    # Sent once to a contact who opted out; empty: no confirmation.
    "OPT_OUT_CONFIRMATION": _("You have unsubscribed: you will receive no more broadcasts from us. "
                              "Write to us any time if you change your mind."),
    # A live segment count stops at this many contacts ("more than 10000").
    "SEGMENT_COUNT_CAP": 10_000,
    # Contacts tagged per statement in bulk tagging.
    "TAG_CHUNK": 1000,
}


def get(key):
    value = getattr(settings, "SCRM", {}).get(key, DEFAULTS[key])
    return str(value) if key == "OPT_OUT_CONFIRMATION" else value
