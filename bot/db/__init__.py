"""Persistence: SQLAlchemy models, engine set-up and the stores the service uses."""
