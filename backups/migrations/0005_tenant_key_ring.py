import django.db.models.deletion
from django.db import migrations, models


def record_fingerprints(apps, schema_editor):
    """Record the fingerprints of existing keys where the configured master key opens them, so a
    platform later started with the wrong master key can name the one it needs."""
    from backups.keys import MasterKeyError, configured_master_keys
    from backups.pipeline import KeyUnwrapError, key_fingerprint, master_key_fingerprint, unwrap_key

    try:
        masters = configured_master_keys()
    except MasterKeyError:
        return
    TenantKey = apps.get_model("backups", "TenantKey")
    for row in TenantKey.objects.all():
        for master in masters:
            try:
                data_key = unwrap_key(master, bytes(row.wrapped_key), context=f"tenant:{row.tenant_id}".encode())
            except KeyUnwrapError:
                continue
            TenantKey.objects.filter(pk=row.pk).update(fingerprint=key_fingerprint(data_key),
                                                       master_fingerprint=master_key_fingerprint(master))
            break


class Migration(migrations.Migration):

    dependencies = [
        ('backups', '0004_list_indexes'),
        ('tenants', '0002_tenant_path_roots'),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='tenantkey',
            options={'ordering': ['tenant_id', '-created_at', '-id']},
        ),
        migrations.AddField(
            model_name='tenantkey',
            name='abandoned_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='tenantkey',
            name='fingerprint',
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name='tenantkey',
            name='imported_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='tenantkey',
            name='is_current',
            field=models.BooleanField(default=True),
        ),
        migrations.AddField(
            model_name='tenantkey',
            name='last_exported_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='tenantkey',
            name='master_fingerprint',
            field=models.CharField(blank=True, max_length=32),
        ),
        migrations.AddField(
            model_name='tenantkey',
            name='retired_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='tenantkey',
            name='tenant',
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='data_keys', to='tenants.tenant'),
        ),
        migrations.AddConstraint(
            model_name='tenantkey',
            constraint=models.UniqueConstraint(condition=models.Q(('is_current', True)), fields=('tenant',), name='one_current_data_key_per_tenant'),
        ),
        migrations.RunPython(record_fingerprints, migrations.RunPython.noop),
    ]
