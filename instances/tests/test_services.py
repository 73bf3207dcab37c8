"""Instance services against the simulator: registration, config push, restart, typed and
encrypted configs, unreachable instances and timeouts."""
import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError

from instances import services
from instances.models import ConfigType, InstanceConfig, InstanceStatus, WeworkInstance
from simulator.testing import unused_port

from wework.testing.instances import SECRET, TOKEN

pytestmark = pytest.mark.django_db(transaction=True)


def test_register_is_idempotent_and_pushes_config(simulator, admin_user, platform_url):
    first = services.register_instance(name="sim", api_url=simulator.url, token=TOKEN,
                                       webhook_secret=SECRET, max_accounts=3)
    assert first.created and first.pushed
    instance = first.instance
    assert instance.webhook_url == (
        f"{platform_url}/api/v1/instances/{instance.instance_uuid}/events")
    assert simulator.config["webhook_url"] == instance.webhook_url
    assert simulator.config["webhook_secret"] == SECRET
    assert simulator.instance_id == instance.instance_uuid
    # token and secret are encrypted at rest
    raw = dict(InstanceConfig.objects.filter(instance=instance).values_list(
        "config_key", "config_value"))
    assert raw["api_token"] != TOKEN and raw["webhook_secret"] != SECRET
    assert services.get_config(instance, "api_token") == TOKEN

    again = services.register_instance(name="renamed", api_url=simulator.url, token=TOKEN,
                                       max_accounts=4)
    assert not again.created and again.instance.pk == instance.pk
    assert WeworkInstance.objects.count() == 1
    again.instance.refresh_from_db()
    assert again.instance.name == "renamed" and again.instance.max_accounts == 4
    # the secret is kept when none is given
    assert services.get_config(again.instance, "webhook_secret") == SECRET


def test_register_command(simulator, admin_user, platform_url, capsys):
    call_command("register_instance", "--name", "cmd", "--api-url", simulator.url,
                 "--token", TOKEN, "--max-accounts", "2")
    assert "Registered instance 'cmd'" in capsys.readouterr().out
    call_command("register_instance", "--name", "cmd", "--api-url", simulator.url,
                 "--token", TOKEN)
    assert "Updated instance 'cmd'" in capsys.readouterr().out
    assert WeworkInstance.objects.get().max_accounts == 2


def test_register_command_bad_input(admin_user, platform_url):
    with pytest.raises(CommandError, match="http"):
        call_command("register_instance", "--name", "x", "--api-url", "ftp://x", "--token", "t")
    url = f"http://127.0.0.1:{unused_port()}"
    with pytest.raises(CommandError, match="push failed"):
        call_command("register_instance", "--name", "x", "--api-url", url, "--token", "t")
    instance = WeworkInstance.objects.get(name="x")  # saved; the push can be retried
    assert instance.error_message


def test_restart_counts(registered, simulator):
    services.restart_instance(registered, reason="test")
    services.restart_instance(registered)
    registered.refresh_from_db()
    assert registered.restart_count == 2
    assert registered.last_restart_time is not None
    assert simulator.restart_count == 2
    from monitoring.models import AuditLog

    assert AuditLog.objects.filter(operation="instance.restart", result="SUCCESS").count() == 2


def test_unreachable_instance_is_recorded_not_raised_raw(admin_user, platform_url):
    url = f"http://127.0.0.1:{unused_port()}"
    result = services.register_instance(name="gone", api_url=url, token="t")
    assert not result.pushed and result.push_error
    with pytest.raises(services.ServiceError) as info:
        services.restart_instance(result.instance)
    assert info.value.code == "unreachable"
    assert info.value.status == 502
    result.instance.refresh_from_db()
    assert result.instance.restart_count == 0
    assert "unreachable" in result.instance.error_message
    from monitoring.models import AuditLog

    assert AuditLog.objects.filter(operation="instance.restart", result="FAILURE").exists()


def test_timeout_is_recorded(registered, simulator):
    services.set_config(registered, "request_timeout_s", 0.3, config_type=ConfigType.NUMBER)
    simulator.inject(latency_ms=1500)
    with pytest.raises(services.ServiceError) as info:
        services.restart_instance(registered)
    # users read one code and sentence for every transport failure (issue 12): no port probing
    assert info.value.code == "unreachable" and info.value.status == 502
    registered.refresh_from_db()
    assert registered.error_message.startswith("[unreachable] ")
    assert registered.restart_count == 0


@pytest.mark.parametrize("config_type,value,stored,parsed", [
    (ConfigType.STRING, "abc", "abc", "abc"),
    (ConfigType.NUMBER, "12", "12", 12),
    (ConfigType.NUMBER, 2.5, "2.5", 2.5),
    (ConfigType.NUMBER, "-1e15", "-1000000000000000", -10**15),
    (ConfigType.JSON, "[1.5e300, null]", "[1.5e300, null]", [1.5e300, None]),
    (ConfigType.BOOLEAN, "yes", "true", True),
    (ConfigType.BOOLEAN, False, "false", False),
    (ConfigType.JSON, {"a": [1, 2]}, '{"a": [1, 2]}', {"a": [1, 2]}),
])
def test_typed_config_values(admin_user, platform_url, config_type, value, stored, parsed):
    from instances.tests.factories import WeworkInstanceFactory

    instance = WeworkInstanceFactory()
    config = services.set_config(instance, "k", value, config_type=config_type)
    assert config.config_value == stored
    assert services.get_config(instance, "k") == parsed


@pytest.mark.parametrize("config_type,value", [
    (ConfigType.NUMBER, "twelve"), (ConfigType.BOOLEAN, "maybe"), (ConfigType.JSON, "{x"),
    # numbers are finite and within +-1e15; JSON is standard JSON (no NaN, Infinity, 1e999)
    (ConfigType.NUMBER, "1e999"), (ConfigType.NUMBER, "-1e16"), (ConfigType.NUMBER, "NaN"),
    (ConfigType.JSON, '[1,{"a":NaN}]'), (ConfigType.JSON, "[Infinity]"), (ConfigType.JSON, "-Infinity"),
    (ConfigType.JSON, '{"a": 1e999}'), (ConfigType.JSON, {"a": float("nan")}), (ConfigType.JSON, "[" * 100_000),
])
def test_typed_config_rejects_bad_values(config_type, value):
    with pytest.raises(ValidationError):
        services.format_config_value(config_type, value)


def test_push_config_sends_rate_limits(registered, simulator):
    services.set_config(registered, "rate_limits.per_account_per_min", 20,
                        config_type=ConfigType.NUMBER)
    services.push_config(registered)
    assert simulator.config["rate_limits"]["per_account_per_min"] == 20


def test_heartbeat_timeout_marks_offline_only_online(registered):
    registered.status = InstanceStatus.MAINTENANCE
    registered.last_heartbeat = None
    registered.save()
    assert services.mark_silent_instances_offline() == []


def test_offline_instance_that_answers_again_gets_its_configuration(admin_user, platform_url, settings):
    """A restarted runtime has no webhook settings: the platform pushes them once it answers."""
    from django.core.cache import cache

    from instances.models import InstanceStatus
    from simulator.server import Simulator

    restarted = Simulator(port=0, token=TOKEN, accounts=1, contacts=3, rooms=1, members=2,
                          heartbeat_interval_s=3600, duplicate_rate=0.0)
    restarted.start()
    try:
        instance = services.register_instance(name="back", api_url=restarted.url, token=TOKEN,
                                              created_by=admin_user, push=False).instance
        gone = services.register_instance(name="gone", api_url="http://127.0.0.1:9", token=TOKEN,
                                          created_by=admin_user, push=False).instance
        online = services.register_instance(name="fine", api_url="http://127.0.0.1:10", token=TOKEN,
                                            created_by=admin_user, push=False).instance
        WeworkInstance.objects.filter(pk__in=[instance.pk, gone.pk]).update(status=InstanceStatus.OFFLINE)
        WeworkInstance.objects.filter(pk=online.pk).update(status=InstanceStatus.ONLINE)
        for pk in (instance.pk, gone.pk, online.pk):
            cache.delete(f"wework:instances:probe:{pk}")
        assert restarted.config["webhook_url"] is None
        assert services.reconnect_offline_instances() == [instance.pk]
        assert restarted.config["webhook_url"] == services.webhook_url(instance)
        assert restarted.config["webhook_secret"]
        # probed at most once a minute; the unreachable one is left alone (no error raised)
        assert services.reconnect_offline_instances() == []
        from monitoring.models import AuditLog

        assert AuditLog.objects.filter(operation="instance.push_config", resource_id=str(instance.pk),
                                       result="SUCCESS").exists()
    finally:
        restarted.stop()
