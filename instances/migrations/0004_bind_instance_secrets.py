"""Bind the secrets of existing instances to their current address (instances.binding): from
now on the platform sends an instance's API token and webhook secret only to the address they
are bound to, and only the endpoint service moves them (issue 12)."""
from django.db import migrations

from instances import binding

SECRET_KEYS = ("api_token", "webhook_secret")


def bind(apps, schema_editor):
    Instance = apps.get_model("instances", "WeworkInstance")
    Config = apps.get_model("instances", "InstanceConfig")
    with_secrets = set(Config.objects.filter(config_key__in=SECRET_KEYS, config_value__isnull=False)
                       .values_list("instance_id", flat=True))
    bound = set(Config.objects.filter(config_key=binding.BINDING_KEY).values_list("instance_id", flat=True))
    for instance in Instance.objects.filter(pk__in=with_secrets - bound):
        Config.objects.create(
            instance=instance, config_key=binding.BINDING_KEY,
            config_value=binding.fingerprint_of(instance), config_type="string", is_encrypted=False,
            is_system=True, description="The address the API token and webhook secret are bound to")


class Migration(migrations.Migration):

    dependencies = [
        ('instances', '0003_instance_events'),
    ]

    operations = [
        migrations.RunPython(bind, migrations.RunPython.noop),
    ]
