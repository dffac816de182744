"""Conversations defined as data (surveys, feedback) and the pure engine that runs them."""
