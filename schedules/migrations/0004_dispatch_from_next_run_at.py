"""Beat dispatches jobs from ``next_run_at`` instead of one PeriodicTask per job."""

from django.db import migrations, models


def schedule_jobs(apps, schema_editor):
    from django.utils import timezone

    from schedules.timing import cron_next_runs

    BackupJob = apps.get_model("schedules", "BackupJob")
    now = timezone.now()
    for job in BackupJob.objects.filter(enabled=True).exclude(cron_expression=""):
        try:
            runs = cron_next_runs(job.cron_expression, job.timezone or "UTC", now, 1)
        except ValueError:
            continue
        BackupJob.objects.filter(pk=job.pk).update(next_run_at=runs[0] if runs else None)


def drop_job_tasks(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__startswith="backup-job-", task="schedules.tasks.run_job").delete()
    from django.utils import timezone

    # Tell a running beat that its entries changed (what django-celery-beat's signals do).
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):

    dependencies = [
        ('schedules', '0003_scheduled_run'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='backupjob',
            name='periodic_task',
        ),
        migrations.AddField(
            model_name='backupjob',
            name='next_run_at',
            field=models.DateTimeField(blank=True, db_index=True, null=True),
        ),
        migrations.RunPython(schedule_jobs, migrations.RunPython.noop),
        migrations.RunPython(drop_job_tasks, migrations.RunPython.noop),
    ]
