"""Thin webhook adapters: verify, turn provider fields into core types, store, enqueue."""
