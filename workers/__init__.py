"""Celery app, thin tasks and the campaign pipeline."""
