"""One typed, frozen settings object, built from the environment (and an optional `.env`).

Every process (web, worker, CLI) builds its settings with :func:`load_settings` and passes
the object on; tests build their own with :meth:`Settings.from_mapping`. A missing or malformed
value stops start-up with a :class:`SettingsError` that names the setting.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import secrets
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import time
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from limits import RateLimitItem
from limits import parse as parse_limit

from bot.channel_order import CHANNELS, DEFAULT_ORDER, Route, parse_order
from bot.settings_parsing import Get
from bot.settings_parsing import SettingsError as SettingsError  # re-exported: its old home
from bot.settings_parsing import parse_bool as _bool
from bot.settings_parsing import parse_int as _int
from bot.settings_parsing import parse_token as _token
from bot.settings_parsing import parse_url as _url

T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VAR_DIR = PROJECT_ROOT / "var"
TWILIO_DEFAULT_API_BASE = "https://api.twilio.com"
# What the dashboard's Retrain runs; {nlu}, {out} and {name} are filled in for each run.
DEFAULT_TRAIN_COMMAND = (
    ".venv-rasa/bin/rasa train nlu --config config.yml --nlu {nlu} --out {out} "
    "--fixed-model-name {name}"
)
# Broadcast pace per channel's default adapter (BROADCAST_PACE adds to it): a Twilio long
# code sends 1 segment/s; WhatsApp ~20 messages/s. Another provider's route is paced by its
# own settings (`pace_per_second` of bot/channels/<name>/settings.py, see `pace_for`).
DEFAULT_PACE: dict[str, float] = {"sms": 1.0, "whatsapp": 20.0}
# Where providers live, and the module in a provider's folder that parses its settings
# (bot/channels/registry.py's contract). Named, not imported: bot.settings is the bottom
# layer and never imports a provider statically.
PROVIDERS_PACKAGE = "bot.channels"
PROVIDER_SETTINGS_MODULE = "settings"
DEFAULT_LOGIN_LIMIT_PER_IP = "20 per 5 minutes"
DEFAULT_LOGIN_LIMIT_PER_ACCOUNT = "10 per 15 minutes"


def default_concurrency(database_url: str) -> str:
    """WORKER_CONCURRENCY when unset. SQLite: 16 handler threads in the one worker `make run`
    starts (its turns are committed in groups and parsed by the NLU server in batches;
    measured 200 FAQ msg/s sustained where 4 threads fell behind). PostgreSQL: 4 per worker,
    the production topology scaling out with workers (`make run-prod`'s 2 workers at 300
    msg/s: ack p50/p99 31/221 ms with 4 threads each, 408/762 ms with 16, whose database
    sessions outran the webhooks' on the shared cores)."""
    return "16" if database_url.startswith("sqlite") else "4"


def _parse_dotenv(path: Path) -> dict[str, str]:
    """Reads KEY=VALUE lines; `#` comments, blank lines and optional quotes are allowed."""
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        if not sep or not key.strip().isidentifier():
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _hours(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number of hours, got {value!r}") from None
    if not 1 <= number <= 24 * 30:
        raise SettingsError(f"{name} must be between 1 and 720 hours, got {number}")
    return number


def _limit(name: str, value: str | None, default: str) -> RateLimitItem:
    text = value or default
    try:
        return parse_limit(text)
    except ValueError:
        raise SettingsError(f"{name} must look like '10 per 5 minutes', got {text!r}") from None


def _command(name: str, value: str) -> tuple[str, ...]:
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise SettingsError(f"{name} must be a command line ({exc}), got {value!r}") from None


def _quiet_hours(value: str) -> tuple[time, time] | None:
    if value.strip().lower() in ("", "none", "off"):
        return None
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-"))
    except ValueError:
        raise SettingsError(
            f"QUIET_HOURS must look like 21:00-07:00 (or 'off'), got {value!r}"
        ) from None
    return start, end


def _rates(name: str, value: str, keys_like: str) -> dict[str, float]:
    """Parses "sms=1,whatsapp=20,+15005550006=2" style lists of non-negative numbers."""
    rates: dict[str, float] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, number = item.partition("=")
        try:
            rate = float(number)
        except ValueError:
            rate = -1.0
        if not sep or not key.strip() or rate < 0:
            raise SettingsError(f"{name} must be a list like {keys_like}, got {item.strip()!r}")
        rates[key.strip()] = rate
    return rates


def _phone_sender(name: str, value: str, whatsapp: bool) -> str:
    bare = value.removeprefix("whatsapp:")
    if not (bare.startswith("+") and bare[1:].isdigit() and 8 <= len(bare) <= 16):
        raise SettingsError(
            f"{name} must be a phone number in E.164 form like +15005550006, got {value!r}"
        )
    return f"whatsapp:{bare}" if whatsapp else bare


def _shared_keys(value: str | None) -> tuple[str, ...]:
    keys = tuple(key.strip() for key in value.split(",")) if value else ()
    if not all(keys):
        raise SettingsError(
            "TWILIO_WEBHOOK_SHARED_KEYS must be SharedKey secrets separated by commas, "
            "none of them empty"
        )
    return keys


@dataclass(frozen=True)
class Settings:
    """Everything the service needs to know about its deployment."""

    database_url: str
    secret_key: str = field(repr=False)
    var_dir: Path = DEFAULT_VAR_DIR
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = field(default=None, repr=False)
    # The SharedKey secrets Twilio signs webhooks with when a Webhook Rule says so
    # (bot/channels/twilio/signatures.py); two while one key replaces another.
    twilio_webhook_shared_keys: tuple[str, ...] = field(default=(), repr=False)
    twilio_messaging_service_sid: str | None = None
    twilio_sms_from: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_api_base: str = TWILIO_DEFAULT_API_BASE
    public_url: str | None = None
    rasa_urls: tuple[str, ...] = ()
    redis_url: str | None = None
    default_region: str = "NP"
    worker_concurrency: int = 16
    send_concurrency: int = 64
    worker_nice: int = 5
    # The web acknowledges a webhook once its message is in a spool file on its own disk
    # (bot/spool.py); on by default on SQLite, and by `bot run` for what it starts.
    inbound_spool: bool = True
    queue_name: str = "bot"
    nlu_timeout_seconds: float = 1.0
    recover_after_seconds: int = 30
    claim_seconds: int = 120
    # The worker is behind when more messages than this wait, or the oldest waits longer:
    # /readyz, /metrics and the dashboard say so, and broadcasts pause (bot/backlog.py).
    backlog_messages: int = 1000
    backlog_seconds: int = 60
    # A survey or feedback session ends after this many minutes of silence (answers kept).
    session_timeout_minutes: int = 24 * 60
    # Broadcasts: the deployment's time zone, quiet hours (local, start-end; None = none),
    # pace in segments (SMS) or messages (WhatsApp) per second per sender (0 = unpaced),
    # price per segment by "channel" or "channel:+countrycode", and APScheduler's grace.
    timezone: str = "Asia/Kathmandu"
    quiet_hours: tuple[time, time] | None = (time(21, 0), time(7, 0))
    pace: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_PACE))
    prices: Mapping[str, float] = field(default_factory=lambda: {"sms": 0.0079, "whatsapp": 0.005})
    currency: str = "USD"
    # Channel order and failover (issue 11, bot/channel_order.py, bot/failover.py): the routes
    # a message may take, best first; how many consecutive "provider down" failures take a
    # route out of use; after how long a route taken out gets one probe send.
    channel_order: tuple[Route, ...] = field(default_factory=lambda: parse_order(DEFAULT_ORDER))
    failover_after: int = 3
    failover_probe_seconds: int = 60
    misfire_grace_seconds: int = 3600
    # Broadcast desk (issue 12): how long a draft asked for by SMS waits for "YES <code>",
    # and how often at most a mobilizer's recurring broadcast may go out.
    broadcast_confirm_minutes: int = 10
    mobilizer_min_interval_hours: int = 24
    send_timeout_seconds: int = 10
    send_max_attempts: int = 6
    simulator_enabled: bool = True
    production: bool = False
    # Security (issue 12): message bodies in console output (development only), the bearer
    # token that opens /metrics and /readyz to non-loopback clients, and the token Rasa's
    # HTTP API requires (`rasa run --auth-token`, sent by the client as `?token=`).
    log_message_bodies: bool = False
    ops_token: str | None = field(default=None, repr=False)
    rasa_token: str | None = field(default=None, repr=False)
    # Dashboard security (issue 12): proxy hops whose X-Forwarded-* headers are believed
    # (0: none, the client address is the TCP peer's), and two-factor sign-in for every account.
    trusted_proxies: int = 0
    require_2fa: bool = False
    # Data protection (issue 12): days after which message bodies, survey answers and
    # feedback text are blanked (0: kept), and the key of the hash that keeps an erased
    # person's opt-out honoured (None: SECRET_KEY; set it before ever rotating SECRET_KEY).
    retention_days: int = 0
    phone_hash_key: str | None = field(default=None, repr=False)
    # Dashboard (issue 14; once read from the environment by dashboard/config.py): how long
    # the bot stays quiet for a contact after a person replied by hand, sign-in attempts
    # allowed per client address and per account, and retraining: the command (placeholders
    # {nlu}, {out}, {name}), its working directory, where models go, and its time limit.
    handoff_hours: int = 24
    login_limit_ip: RateLimitItem = field(
        default_factory=lambda: parse_limit(DEFAULT_LOGIN_LIMIT_PER_IP)
    )
    login_limit_account: RateLimitItem = field(
        default_factory=lambda: parse_limit(DEFAULT_LOGIN_LIMIT_PER_ACCOUNT)
    )
    nlu_train_command: tuple[str, ...] = tuple(shlex.split(DEFAULT_TRAIN_COMMAND))
    nlu_train_cwd: Path = PROJECT_ROOT
    nlu_models_dir: Path = PROJECT_ROOT / "models"
    nlu_train_timeout_seconds: int = 1800
    # Each provider's own settings (issue 11), parsed by its folder's settings.py: provider
    # name -> what its `parse` returned (None: the provider is not configured). Read them
    # with `provider(name, kind)`; the dashboard shows them as "<name>_<field>".
    providers: Mapping[str, object] = field(default_factory=dict)

    def provider(self, name: str, kind: type[T]) -> T | None:
        """Provider `name`'s settings (bot/channels/<name>/settings.py's `parse`), None when
        it is not configured.

        Raises:
            TypeError: they are not a `kind` (a provider's reader asked for another's).
        """
        value = self.providers.get(name)
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"the settings of {name!r} are a {type(value).__name__}, not {kind}")
        return value

    def with_provider(self, name: str, value: object) -> Settings:
        """These settings with provider `name`'s replaced by `value` (tests, tools)."""
        return replace(self, providers={**self.providers, name: value})

    @property
    def nlu_current_model(self) -> Path:
        """The model `bot run` starts Rasa with (a successful retraining replaces it)."""
        return self.nlu_models_dir / "nlu.tar.gz"

    @property
    def phone_key(self) -> bytes:
        """The key of the keyed hash that stands for an erased person's number."""
        return (self.phone_hash_key or self.secret_key).encode("utf-8")

    @property
    def twilio_enabled(self) -> bool:
        """True when outbound messages go to Twilio rather than the console channel."""
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def zone(self) -> ZoneInfo:
        """The deployment's time zone (schedules and quiet hours are local times)."""
        return ZoneInfo(self.timezone)

    def pace_for(self, channel: str, sender: str | None, provider: str | None = None) -> float:
        """Segments (SMS) or messages (WhatsApp) per second for a sender; 0 means unpaced.

        BROADCAST_PACE's entry for the sender, else for its route ("sms:sparrow"), else the
        provider's own default (its settings' `pace_per_second`: what it documents, an
        Android pool's phones together), else the channel's.
        """
        if sender and sender in self.pace:
            return self.pace[sender]
        if provider and f"{channel}:{provider}" in self.pace:
            return self.pace[f"{channel}:{provider}"]
        own = getattr(self.providers.get(provider or ""), "pace_per_second", None)
        if isinstance(own, int | float):
            return float(own)
        return self.pace.get(channel, 0.0)

    @property
    def queue_path(self) -> Path:
        """The embedded job queue's SQLite file."""
        return self.var_dir / "queue.db"

    @classmethod
    def from_mapping(cls, env: Mapping[str, str]) -> Settings:
        """Builds settings from a mapping of environment variables.

        Args:
            env: variables such as ``os.environ``.

        Raises:
            SettingsError: a value is missing or malformed; the message names it.
        """

        def get(name: str) -> str | None:
            value = env.get(name)
            return value.strip() if value is not None and value.strip() else None

        production = _bool("BOT_ENV", "1" if get("BOT_ENV") == "production" else "0")
        if get("BOT_ENV") not in (None, "production", "development", "test"):
            raise SettingsError(
                f"BOT_ENV must be production, development or test, got {get('BOT_ENV')!r}"
            )
        var_dir = Path(get("VAR_DIR") or DEFAULT_VAR_DIR)

        database_url = get("DATABASE_URL") or f"sqlite:///{var_dir / 'bot.db'}"
        if not database_url.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise SettingsError(
                f"DATABASE_URL must start with sqlite:// or postgresql://, got {database_url!r}"
            )
        if database_url.startswith("postgresql://"):
            database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]

        secret_key = get("SECRET_KEY")
        if secret_key is None:
            if production:
                raise SettingsError("SECRET_KEY is required when BOT_ENV=production")
            secret_key = _local_secret(var_dir)
        elif len(secret_key) < 16:
            raise SettingsError("SECRET_KEY must be at least 16 characters long")

        account_sid = get("TWILIO_ACCOUNT_SID")
        if account_sid is not None and not (
            account_sid.startswith("AC") and len(account_sid) == 34
        ):
            raise SettingsError("TWILIO_ACCOUNT_SID must look like AC followed by 32 characters")
        auth_token = get("TWILIO_AUTH_TOKEN")
        service_sid = get("TWILIO_MESSAGING_SERVICE_SID")
        if service_sid is not None and not (
            service_sid.startswith("MG") and len(service_sid) == 34
        ):
            raise SettingsError(
                "TWILIO_MESSAGING_SERVICE_SID must look like MG followed by 32 characters"
            )
        sms_from = get("TWILIO_SMS_FROM")
        whatsapp_from = get("TWILIO_WHATSAPP_FROM")
        if account_sid and not auth_token:
            raise SettingsError("TWILIO_AUTH_TOKEN is required when TWILIO_ACCOUNT_SID is set")
        if account_sid and not (service_sid or sms_from or whatsapp_from):
            raise SettingsError(
                "TWILIO_MESSAGING_SERVICE_SID or TWILIO_SMS_FROM / TWILIO_WHATSAPP_FROM "
                "is required when TWILIO_ACCOUNT_SID is set"
            )

        timezone = get("TIMEZONE") or "Asia/Kathmandu"
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(
                f"TIMEZONE must be a time zone like Asia/Kathmandu, got {timezone!r}"
            ) from None

        # Security (issue 12)
        log_message_bodies = _bool("LOG_MESSAGE_BODIES", get("LOG_MESSAGE_BODIES") or "false")
        if log_message_bodies and production:
            raise SettingsError(
                "LOG_MESSAGE_BODIES must not be set when BOT_ENV=production "
                "(message bodies are personal data)"
            )
        ops_token = _token("OPS_TOKEN", get("OPS_TOKEN"))
        rasa_token = _token("RASA_TOKEN", get("RASA_TOKEN"))
        if production and account_sid and not get("PUBLIC_URL"):
            raise SettingsError(
                "PUBLIC_URL is required when Twilio is configured and BOT_ENV=production "
                "(webhook signatures are checked against it)"
            )
        if production and get("RASA_URL") and rasa_token is None:
            raise SettingsError(
                "RASA_TOKEN is required when RASA_URL is set and BOT_ENV=production "
                "(start Rasa with --auth-token)"
            )

        # Data protection (issue 12)
        retention = get("RETENTION_DAYS") or "0"
        retention = "0" if retention.lower() in ("off", "none") else retention
        retention_days = _int("RETENTION_DAYS", retention, 0, 36500)
        phone_hash_key = get("PHONE_HASH_KEY")
        if phone_hash_key is not None and len(phone_hash_key) < 16:
            raise SettingsError("PHONE_HASH_KEY must be at least 16 characters long")

        return cls(
            timezone=timezone,
            quiet_hours=_quiet_hours(env.get("QUIET_HOURS", "21:00-07:00")),
            pace=DEFAULT_PACE
            | _rates("BROADCAST_PACE", get("BROADCAST_PACE") or "", "sms=1,sms:sparrow=10"),
            prices={"sms": 0.0079, "whatsapp": 0.005}
            | _rates(
                "PRICE_PER_SEGMENT", get("PRICE_PER_SEGMENT") or "", "sms=0.0079,sms:+977=0.02"
            ),
            currency=get("CURRENCY") or "USD",
            **_failover(get),
            broadcast_confirm_minutes=_int(
                "BROADCAST_CONFIRM_MINUTES", get("BROADCAST_CONFIRM_MINUTES") or "10", 1, 1440
            ),
            mobilizer_min_interval_hours=_int(
                "MOBILIZER_MIN_INTERVAL_HOURS", get("MOBILIZER_MIN_INTERVAL_HOURS") or "24", 1, 720
            ),
            misfire_grace_seconds=_int(
                "MISFIRE_GRACE_SECONDS", get("MISFIRE_GRACE_SECONDS") or "3600", 1, 7 * 86400
            ),
            database_url=database_url,
            secret_key=secret_key,
            var_dir=var_dir,
            twilio_account_sid=account_sid,
            twilio_auth_token=auth_token,
            twilio_webhook_shared_keys=_shared_keys(get("TWILIO_WEBHOOK_SHARED_KEYS")),
            twilio_messaging_service_sid=service_sid,
            twilio_sms_from=_phone_sender("TWILIO_SMS_FROM", sms_from, False) if sms_from else None,
            twilio_whatsapp_from=(
                _phone_sender("TWILIO_WHATSAPP_FROM", whatsapp_from, True)
                if whatsapp_from
                else None
            ),
            twilio_api_base=_url(
                "TWILIO_API_BASE",
                get("TWILIO_API_BASE") or TWILIO_DEFAULT_API_BASE,
                ("http", "https"),
            ),
            public_url=_url("PUBLIC_URL", v, ("http", "https"))
            if (v := get("PUBLIC_URL"))
            else None,
            rasa_urls=tuple(
                _url("RASA_URL", u.strip(), ("http", "https"))
                for u in (get("RASA_URL") or "").split(",")
                if u.strip()
            ),
            redis_url=(
                _url("REDIS_URL", v, ("redis", "rediss", "unix"))
                if (v := get("REDIS_URL"))
                else None
            ),
            default_region=(get("DEFAULT_REGION") or "NP").upper(),
            worker_concurrency=_int(
                "WORKER_CONCURRENCY",
                get("WORKER_CONCURRENCY") or default_concurrency(database_url),
                1,
                256,
            ),
            send_concurrency=_int("SEND_CONCURRENCY", get("SEND_CONCURRENCY") or "64", 1, 1024),
            worker_nice=_int("WORKER_NICE", get("WORKER_NICE") or "5", 0, 19),
            inbound_spool=_bool(
                "INBOUND_SPOOL",
                get("INBOUND_SPOOL") or ("true" if database_url.startswith("sqlite") else "false"),
            ),
            queue_name=get("QUEUE_NAME") or "bot",
            nlu_timeout_seconds=_int("NLU_TIMEOUT_MS", get("NLU_TIMEOUT_MS") or "1000", 50, 60000)
            / 1000,
            recover_after_seconds=_int(
                "RECOVER_AFTER_SECONDS", get("RECOVER_AFTER_SECONDS") or "30", 1, 86400
            ),
            claim_seconds=_int("CLAIM_SECONDS", get("CLAIM_SECONDS") or "120", 1, 86400),
            backlog_messages=_int(
                "BACKLOG_MESSAGES", get("BACKLOG_MESSAGES") or "1000", 1, 10_000_000
            ),
            backlog_seconds=_int("BACKLOG_SECONDS", get("BACKLOG_SECONDS") or "60", 1, 86400),
            session_timeout_minutes=_int(
                "SESSION_TIMEOUT_MINUTES", get("SESSION_TIMEOUT_MINUTES") or "1440", 1, 43200
            ),
            send_timeout_seconds=_int(
                "SEND_TIMEOUT_SECONDS", get("SEND_TIMEOUT_SECONDS") or "10", 1, 120
            ),
            send_max_attempts=_int("SEND_MAX_ATTEMPTS", get("SEND_MAX_ATTEMPTS") or "6", 1, 50),
            # Off in production until the dashboard's login guards it.
            simulator_enabled=_bool(
                "SIMULATOR_ENABLED", get("SIMULATOR_ENABLED") or ("false" if production else "true")
            ),
            production=production,
            # Security (issue 12)
            log_message_bodies=log_message_bodies,
            ops_token=ops_token,
            rasa_token=rasa_token,
            # Dashboard security (issue 12)
            trusted_proxies=_int("TRUSTED_PROXIES", get("TRUSTED_PROXIES") or "0", 0, 10),
            require_2fa=_bool("REQUIRE_2FA", get("REQUIRE_2FA") or "false"),
            # Data protection (issue 12)
            retention_days=retention_days,
            phone_hash_key=phone_hash_key,
            # Dashboard (issue 14)
            handoff_hours=_hours("HANDOFF_HOURS", get("HANDOFF_HOURS"), 24),
            login_limit_ip=_limit(
                "LOGIN_LIMIT_PER_IP", get("LOGIN_LIMIT_PER_IP"), DEFAULT_LOGIN_LIMIT_PER_IP
            ),
            login_limit_account=_limit(
                "LOGIN_LIMIT_PER_ACCOUNT",
                get("LOGIN_LIMIT_PER_ACCOUNT"),
                DEFAULT_LOGIN_LIMIT_PER_ACCOUNT,
            ),
            nlu_train_command=_command(
                "NLU_TRAIN_COMMAND", get("NLU_TRAIN_COMMAND") or DEFAULT_TRAIN_COMMAND
            ),
            nlu_models_dir=Path(get("NLU_MODELS_DIR") or PROJECT_ROOT / "models"),
            # Each provider's own settings (issue 11), from its folder
            providers=_providers(get),
        )


def _failover(get: Get) -> dict[str, Any]:
    """CHANNEL_ORDER, FAILOVER_AFTER and FAILOVER_PROBE_SECONDS (bot/failover.py)."""
    order = get("CHANNEL_ORDER") or DEFAULT_ORDER
    try:
        routes = parse_order(order)
    except ValueError as exc:
        raise SettingsError(
            "CHANNEL_ORDER must be a comma-separated list of channel or channel:provider "
            f"(channels: {', '.join(CHANNELS)}), like whatsapp,sms:sparrow,sms; {exc}"
        ) from None
    return {
        "channel_order": routes,
        "failover_after": _int("FAILOVER_AFTER", get("FAILOVER_AFTER") or "3", 1, 1000),
        "failover_probe_seconds": _int(
            "FAILOVER_PROBE_SECONDS", get("FAILOVER_PROBE_SECONDS") or "60", 1, 86400
        ),
    }


def _providers(get: Get) -> dict[str, object]:
    """Every provider's settings, parsed by its folder's settings.py (`parse(get)`, raising
    SettingsError that names the setting), by provider name.

    Found, like the providers themselves (bot/channels/registry.py), as the folders under
    bot/channels/ and imported by name: this bottom layer never imports a provider
    statically, and a provider's settings.py imports only bot.settings_parsing (.importlinter
    checks both), so there is no cycle. A folder without settings.py has no settings.
    """
    parsed: dict[str, object] = {}
    for name, module_name, module in provider_modules(PROVIDER_SETTINGS_MODULE):
        parse = getattr(module, "parse", None)
        if not callable(parse):
            raise SettingsError(f"{module_name} defines no parse(get) for its settings")
        parsed[name] = parse(get)
    return parsed


def provider_modules(module: str) -> Iterator[tuple[str, str, ModuleType]]:
    """(folder name, module name, module) of `module` ("provider", "settings") in every
    provider folder under bot/channels/ that has one, in name order. Imported by name: this
    bottom layer never imports a provider statically. The registry finds providers this way
    too."""
    package = importlib.import_module(PROVIDERS_PACKAGE)
    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if not info.ispkg:
            continue
        module_name = f"{PROVIDERS_PACKAGE}.{info.name}.{module}"
        try:
            found = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue  # a folder without this module
            raise
        yield info.name, module_name, found


def _local_secret(var_dir: Path) -> str:
    """A random key kept in `var/` for the embedded default, so sessions survive restarts.

    Production must set SECRET_KEY; this only spares a new user a manual step.
    """
    path = var_dir / "secret_key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
    return key


def load_settings(env: Mapping[str, str] | None = None, dotenv: Path | None = None) -> Settings:
    """Builds settings from `.env` (if present) overlaid by the process environment.

    Args:
        env: the environment; defaults to ``os.environ``.
        dotenv: the `.env` file; defaults to `.env` in the project root.
    """
    return Settings.from_mapping(_sources(env, dotenv))


def setting_given(
    name: str, env: Mapping[str, str] | None = None, dotenv: Path | None = None
) -> bool:
    """True when `name` is set in the environment or in `.env` (where load_settings looks)."""
    return name in _sources(env, dotenv)


def _sources(env: Mapping[str, str] | None, dotenv: Path | None) -> dict[str, str]:
    """`.env` (if present; `.env` in the project root by default) overlaid by the
    environment (``os.environ`` by default)."""
    merged: dict[str, str] = {}
    dotenv_path = dotenv if dotenv is not None else PROJECT_ROOT / ".env"
    if dotenv_path.is_file():
        merged.update(_parse_dotenv(dotenv_path))
    merged.update(os.environ if env is None else env)
    return merged
