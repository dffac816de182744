"""Test fakes and load tools shared by the tests and the benchmarks.

Not part of the service: the fake Twilio API and the fake Rasa server (each runnable as its
own process), the one open-loop webhook load generator and percentile function, and helpers
to run fakes in processes of their own. `tests/support/` keeps what only the tests use.
"""
