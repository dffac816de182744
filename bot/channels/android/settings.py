"""The Android SMS gateway's settings (issue 11), parsed and checked: errors name the setting.

Found by bot/settings.py (`Settings.provider("android", AndroidGateway)`, None when no phone
is configured) like every provider's settings.py (bot/channels/registry.py's contract): it
imports nothing of the service but bot.settings_parsing.

- ANDROID_GATEWAY_MODE: `local` (default: the service calls each phone's own API on the
  local network) or `cloud` (one account on the app's cloud server, which relays to the
  phones by push).
- ANDROID_GATEWAY_PHONES (local mode): the pool, one phone per `;`:
  `name=URL,user,password[,signing key]`, e.g.
  `kathmandu-1=http://192.168.1.20:8080,sms,Secr3t;pokhara=http://10.0.0.7:8080,sms,Other`.
  The user and password are the ones the app's Home tab shows under "Local server"; the
  optional signing key is that phone's Settings > Webhooks > Signing Key (else the shared
  ANDROID_GATEWAY_SIGNING_KEY is used for it).
- ANDROID_GATEWAY_DEVICES (cloud mode): the pool, `name=deviceId;name=deviceId` (ids from
  `GET /3rdparty/v1/devices`), with ANDROID_GATEWAY_CLOUD_USER / _PASSWORD (the app's
  "Cloud server" credentials) and ANDROID_GATEWAY_CLOUD_URL (default the public server).
- ANDROID_GATEWAY_SIGNING_KEY: the webhook signing key shared by phones without their own.
- ANDROID_GATEWAY_PACE: SMS segments per minute per phone (default 6; see api.py for why).
- ANDROID_GATEWAY_MAX_FAILURES: consecutive failures that take a phone out of the pool (3).
- ANDROID_GATEWAY_PROBE_SECONDS: how often a phone out of the pool is asked again (60).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlparse

from bot.settings_parsing import Get, SettingsError

DEFAULT_CLOUD_URL = "https://api.sms-gate.app/3rdparty/v1"
DEFAULT_PACE_PER_MINUTE = 6.0
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class AndroidPhone:
    """One phone of the pool: where its API is and how to authenticate to it."""

    name: str
    base_url: str  # local: the phone's http://ip:port; cloud: the cloud API's base
    username: str = field(repr=False)
    password: str = field(repr=False)
    signing_key: str | None = field(default=None, repr=False)
    device_id: str | None = None  # cloud mode: the device the message is for


@dataclass(frozen=True)
class AndroidGateway:
    """The pool and how it is paced, watched and authenticated."""

    mode: str
    phones: tuple[AndroidPhone, ...]
    signing_key: str | None = field(default=None, repr=False)
    pace_per_minute: float = DEFAULT_PACE_PER_MINUTE
    max_failures: int = 3
    probe_seconds: int = 60

    @property
    def pace_per_second(self) -> float:
        """The route's broadcast pace (BROADCAST_PACE's sms:android overrides it): every phone
        configured sends at its own pace, so the pool goes as fast as its phones together
        (a phone out of the pool slows it: its turns wait, bot/channels/android/pool.py)."""
        return self.pace_per_minute / 60 * len(self.phones)

    def signing_keys(self) -> list[tuple[str | None, str]]:
        """(phone name or None for the shared key, key) for every signing key configured."""
        keys: list[tuple[str | None, str]] = [
            (p.name, p.signing_key) for p in self.phones if p.signing_key
        ]
        if self.signing_key:
            keys.append((None, self.signing_key))
        return keys


def parse(get: Get) -> AndroidGateway | None:
    """The gateway's settings, or None when no phone is configured; raises SettingsError."""
    mode = (get("ANDROID_GATEWAY_MODE") or "local").strip().lower()
    if mode not in ("local", "cloud"):
        raise SettingsError(f"ANDROID_GATEWAY_MODE must be local or cloud, got {mode!r}")
    shared = _key("ANDROID_GATEWAY_SIGNING_KEY", get("ANDROID_GATEWAY_SIGNING_KEY"))
    if mode == "local":
        phones = _local_phones(get("ANDROID_GATEWAY_PHONES") or "")
    else:
        phones = _cloud_devices(get)
    if not phones:
        return None
    if any(p.signing_key is None for p in phones) and shared is None:
        raise SettingsError(
            "ANDROID_GATEWAY_SIGNING_KEY (the app's Settings > Webhooks > Signing Key) is "
            "required unless every phone in ANDROID_GATEWAY_PHONES has its own"
        )
    return AndroidGateway(
        mode=mode,
        phones=phones,
        signing_key=shared,
        pace_per_minute=_number("ANDROID_GATEWAY_PACE", get, DEFAULT_PACE_PER_MINUTE),
        max_failures=int(_number("ANDROID_GATEWAY_MAX_FAILURES", get, 3)),
        probe_seconds=int(_number("ANDROID_GATEWAY_PROBE_SECONDS", get, 60)),
    )


def _local_phones(value: str) -> tuple[AndroidPhone, ...]:
    setting = "ANDROID_GATEWAY_PHONES"
    shape = "name=http://phone-ip:8080,user,password[,signing key] separated by ;"
    phones: list[AndroidPhone] = []
    for item in filter(None, (part.strip() for part in value.split(";"))):
        name, sep, rest = item.partition("=")
        fields = [f.strip() for f in rest.split(",")]
        if not sep or len(fields) not in (3, 4) or not all(fields[:3]):
            raise SettingsError(
                f"{setting} must be {shape}; got an entry {name.strip()!r} without that"
            )
        url = fields[0]
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise SettingsError(
                f"{setting}: the phone {name.strip()!r} needs an http(s) URL, got {url!r}"
            )
        key = (
            _key(f"{setting} (signing key of {name.strip()!r})", fields[3] or None)
            if (len(fields) == 4)
            else None
        )
        phones.append(
            AndroidPhone(
                name=_name(setting, name),
                base_url=url.rstrip("/"),
                username=fields[1],
                password=fields[2],
                signing_key=key,
            )
        )
    _unique(setting, phones)
    return tuple(phones)


def _cloud_devices(get: Get) -> tuple[AndroidPhone, ...]:
    setting = "ANDROID_GATEWAY_DEVICES"
    value = get(setting) or ""
    if not value.strip():
        return ()
    user, password = get("ANDROID_GATEWAY_CLOUD_USER"), get("ANDROID_GATEWAY_CLOUD_PASSWORD")
    if not user or not password:
        raise SettingsError(
            "ANDROID_GATEWAY_CLOUD_USER and ANDROID_GATEWAY_CLOUD_PASSWORD are required"
        )
    url = (get("ANDROID_GATEWAY_CLOUD_URL") or DEFAULT_CLOUD_URL).rstrip("/")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise SettingsError(f"ANDROID_GATEWAY_CLOUD_URL must be an http(s) URL, got {url!r}")
    phones: list[AndroidPhone] = []
    for item in filter(None, (part.strip() for part in value.split(";"))):
        name, sep, device = item.partition("=")
        if not sep or not device.strip():
            raise SettingsError(f"{setting} must be name=deviceId separated by ;, got {item!r}")
        phones.append(AndroidPhone(_name(setting, name), url, user, password, None, device.strip()))
    _unique(setting, phones)
    return tuple(phones)


def _name(setting: str, raw: str) -> str:
    name = raw.strip().lower()
    if not name or len(name) > 32 or not set(name) <= NAME_CHARS:
        raise SettingsError(f"{setting}: a phone's name must be 1-32 of a-z 0-9 - _, got {raw!r}")
    return name


def _unique(setting: str, phones: list[AndroidPhone]) -> None:
    names = [p.name for p in phones]
    if len(set(names)) != len(names):
        raise SettingsError(f"{setting}: two phones have the same name")


def _key(setting: str, value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value.strip()) < 8:
        raise SettingsError(f"{setting} must be at least 8 characters (the app's own are 8)")
    return value.strip()


def _number(setting: str, get: Get, default: float) -> float:
    value = get(setting)
    if value is None or not value.strip():
        return default
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{setting} must be a number, got {value!r}") from None
    if not 0 < number <= 10_000:
        raise SettingsError(f"{setting} must be above 0 and at most 10000, got {value!r}")
    return number
