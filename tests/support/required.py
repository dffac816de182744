"""What a test needs from the machine: skipped here when it is missing, failed in CI.

`.ci/run` sets REQUIRE_POSTGRES (and CI systems set CI): there, a missing server or a model
that `make test` should have built is a broken set-up, not a reason to skip.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def missing(required: str, skipped: str) -> NoReturn:
    """Fails with `required` in CI, skips with `skipped` elsewhere."""
    if os.environ.get("CI") or os.environ.get("REQUIRE_POSTGRES"):
        pytest.fail(required)
    pytest.skip(skipped)


def require_shipped_model() -> None:
    """The trained NLU model and Rasa's virtualenv (`make test` builds them first)."""
    from bot import processes

    if not processes.rasa_available():
        missing(
            "Rasa and its model are required here: `make test` trains them (`make train`)",
            "Rasa and its model: `make train`",
        )
