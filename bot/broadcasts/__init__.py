"""Awareness broadcasts: audiences, preview, fan-out, paced sending, schedules.

The scheduler decides *when* (bot/broadcasts/scheduler.py); the job queue does the *work*:
a run is planned into one outbox row per recipient (fan-out), then sent at the sender's pace.
Rows in the database are the truth, so a restart anywhere resumes without sending twice.
"""
