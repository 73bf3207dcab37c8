"""A new platform starts with its default alert rules (issue 18: alerts out of the box).

Only missing rules are created, so a rule an operator changed or deleted later is left alone
by this migration (it runs once); `manage.py alerts seed-rules` recreates missing ones."""
from django.db import migrations


def seed(apps, schema_editor):
    from monitoring.services.rules import seed_default_rules

    seed_default_rules(apps.get_model("monitoring", "AlertRule"))


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0003_permissions")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
