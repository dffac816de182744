"""The dashboard's own settings, read from the environment with defaults.

They belong in `bot.settings.Settings` eventually; until then they are read here, once, when
the application is built, and a malformed value stops start-up naming the variable.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from limits import RateLimitItem, parse

from bot.settings import PROJECT_ROOT, SettingsError

DEFAULT_TRAIN_COMMAND = (
    ".venv-rasa/bin/rasa train nlu --config config.yml --nlu {nlu} --out {out} "
    "--fixed-model-name {name}"
)


def _hours(name: str, raw: str | None, default: int) -> int:
    if raw is None or not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number of hours, got {raw!r}") from None
    if not 1 <= value <= 24 * 30:
        raise SettingsError(f"{name} must be between 1 and 720 hours, got {value}")
    return value


def _limit(name: str, raw: str | None, default: str) -> RateLimitItem:
    text = raw.strip() if raw and raw.strip() else default
    try:
        return parse(text)
    except ValueError:
        raise SettingsError(f"{name} must look like '10 per 5 minutes', got {text!r}") from None


@dataclass(frozen=True)
class DashboardConfig:
    """What the dashboard needs beyond the service's settings."""

    # How long the bot stays quiet for a contact after a person replied by hand.
    handoff_hours: int = 24
    # Login attempts allowed per client address and per account.
    login_limit_ip: RateLimitItem = field(default_factory=lambda: parse("20 per 5 minutes"))
    login_limit_account: RateLimitItem = field(default_factory=lambda: parse("10 per 15 minutes"))
    # Retraining: the command (placeholders {nlu}, {out}, {name}), where models go, and the
    # model file `bot run` starts Rasa with (replaced by a successful retraining).
    train_command: tuple[str, ...] = tuple(shlex.split(DEFAULT_TRAIN_COMMAND))
    train_cwd: Path = PROJECT_ROOT
    models_dir: Path = PROJECT_ROOT / "models"
    current_model: Path | None = PROJECT_ROOT / "models" / "nlu.tar.gz"
    train_timeout_seconds: int = 1800

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DashboardConfig:
        """Builds the configuration from environment variables.

        Args:
            env: variables such as ``os.environ`` (the default).

        Raises:
            SettingsError: a value is malformed; the message names the variable.
        """
        env = os.environ if env is None else env
        command = env.get("NLU_TRAIN_COMMAND", "").strip() or DEFAULT_TRAIN_COMMAND
        models = Path(env.get("NLU_MODELS_DIR", "").strip() or PROJECT_ROOT / "models")
        return cls(
            handoff_hours=_hours("HANDOFF_HOURS", env.get("HANDOFF_HOURS"), 24),
            login_limit_ip=_limit(
                "LOGIN_LIMIT_PER_IP", env.get("LOGIN_LIMIT_PER_IP"), "20 per 5 minutes"
            ),
            login_limit_account=_limit(
                "LOGIN_LIMIT_PER_ACCOUNT", env.get("LOGIN_LIMIT_PER_ACCOUNT"), "10 per 15 minutes"
            ),
            train_command=tuple(shlex.split(command)),
            models_dir=models,
            current_model=models / "nlu.tar.gz",
        )
