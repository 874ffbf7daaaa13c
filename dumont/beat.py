"""The beat scheduler (CELERY_BEAT_SCHEDULER); imported by `celery beat` once Django is set up."""

from django_celery_beat.schedulers import DatabaseScheduler

from dumont.health import record_beat_liveness


class LivenessRecordingScheduler(DatabaseScheduler):
    """DatabaseScheduler that records each tick, so /api/health can tell beat is alive."""

    def tick(self, *args, **kwargs):
        record_beat_liveness()
        return super().tick(*args, **kwargs)
