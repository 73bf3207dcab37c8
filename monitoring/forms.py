"""Forms of monitoring: the alert rule form (admin) and the acknowledge/resolve comment form.

`rule_errors()` holds the rule validation shared by the admin form and the API serializer.
"""
import decimal
import re

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.translation import gettext_lazy as _

from wework.metrics import known_metrics

from .models import AlertRule, RuleType

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.\-]{1,99}$")
MAX_ABS_THRESHOLD = decimal.Decimal("99999999999.9999")
MAX_WINDOW = 7 * 24 * 3600


def rule_errors(data):
    """{field: message} of what is wrong with rule values (a dict of model field values)."""
    errors = {}
    name = data.get("name") or ""
    if name and not NAME_RE.match(name):
        errors["name"] = _("Use 2-100 lower-case letters, digits, '.', '_' or '-', starting "
                           "with a letter or digit.")
    rule_type = data.get("rule_type")
    metric = (data.get("metric_name") or "").strip()
    threshold = data.get("threshold_value")
    if threshold is not None:
        try:
            threshold = decimal.Decimal(str(threshold))
        except decimal.InvalidOperation:
            errors["threshold_value"] = _("Enter a number.")
            threshold = None
        else:
            if not threshold.is_finite() or abs(threshold) > MAX_ABS_THRESHOLD:
                errors["threshold_value"] = _("The threshold must be a finite number below "
                                              "10^11 in absolute value.")
                threshold = None
    if rule_type == RuleType.METRIC_THRESHOLD:
        if not metric:
            errors["metric_name"] = _("A metric rule needs a metric.")
        elif metric not in known_metrics():
            errors["metric_name"] = _("Unknown metric %(name)s; known metrics: %(known)s.") % {
                "name": metric, "known": ", ".join(sorted(known_metrics()))}
        if threshold is None and "threshold_value" not in errors:
            errors["threshold_value"] = _("A metric rule needs a threshold.")
    elif rule_type == RuleType.TASK_FAILURE_RATE:
        if threshold is None and "threshold_value" not in errors:
            errors["threshold_value"] = _("Give the failure rate in percent (0-100).")
        elif threshold is not None and not (0 <= threshold <= 100):
            errors["threshold_value"] = _("A failure rate is a percentage between 0 and 100.")
        if metric:
            errors["metric_name"] = _("This rule type takes no metric.")
    elif rule_type == RuleType.INSTANCE_OFFLINE:
        if threshold is not None and (threshold != threshold.to_integral_value()
                                      or not (1 <= threshold <= 1000)):
            errors["threshold_value"] = _("Give the number of missed heartbeats (1-1000).")
        if metric:
            errors["metric_name"] = _("This rule type takes no metric.")
    elif rule_type in (RuleType.ACCOUNT_STATUS, RuleType.SHARD_ROTATION):
        if metric:
            errors["metric_name"] = _("This rule type takes no metric.")
    for field, low, high in (("window_seconds", 60, MAX_WINDOW),
                             ("duration_seconds", 0, MAX_WINDOW),
                             ("cooldown_seconds", 0, MAX_WINDOW)):
        value = data.get(field)
        if value is not None and not (low <= int(value) <= high):
            errors[field] = _("Must be between %(low)d and %(high)d seconds.") % {
                "low": low, "high": high}
    channel_error = channels_error(data.get("notify_channels"))
    if channel_error:
        errors["notify_channels"] = channel_error
    return errors


def channels_error(channels):
    if channels in (None, "", {}):
        return None
    if not isinstance(channels, dict):
        return _('Use an object like {"email": ["ops@example.com"], "wecom": ["ops-robot"]}.')
    unknown = set(channels) - {"email", "wecom"}
    if unknown:
        return _("Unknown channel(s): %(names)s (use email, wecom).") % {
            "names": ", ".join(sorted(unknown))}
    emails = channels.get("email") or []
    robots = channels.get("wecom") or []
    if not isinstance(emails, list) or not isinstance(robots, list):
        return _("Each channel takes a list.")
    for address in emails:
        try:
            validate_email(address)
        except ValidationError:
            return _("%(value)s is not an email address.") % {"value": address}
    configured = getattr(settings, "ALERT_WECOM_ROBOTS", {}) or {}
    for robot in robots:
        if robot not in configured:
            return _("No WeCom robot named %(name)s is configured (ALERT_WECOM_ROBOTS).") % {
                "name": robot}
    return None


class AlertRuleForm(forms.ModelForm):
    class Meta:
        model = AlertRule
        fields = ["name", "display_name", "rule_type", "metric_name", "comparison",
                  "threshold_value", "window_seconds", "duration_seconds", "alert_level",
                  "is_enabled", "notify_channels", "cooldown_seconds", "description"]

    def clean(self):
        cleaned = super().clean()
        for field, message in rule_errors(cleaned).items():
            if field in self.fields and field not in self.errors:
                self.add_error(field, message)
            elif field not in self.fields:
                self.add_error(None, message)
        return cleaned


class AlertCommentForm(forms.Form):
    """The comment asked for when acknowledging or resolving alerts in the admin."""

    comment = forms.CharField(label=_("Comment"), widget=forms.Textarea(attrs={"rows": 3}),
                              max_length=2000, required=False)
