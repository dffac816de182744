"""The providers this installation has: every folder under bot/channels/ with a provider.py.

Contract for a provider (issue 11: "a channel is a plug-in"):

- It is one folder, bot/channels/<name>/, whose `provider.py` defines `PROVIDER`, a
  `bot.channels.base.Provider` with `name == "<name>"`. That module must import only the
  adapter layer (its own api/sender/statuses/errors modules, bot.channels.base, bot.core,
  bot.settings); it may import its sender lazily inside `make_senders`. Its webhook is
  named by a "module:attribute" string and loaded by bot.app only.
- Its settings, if it has any, are parsed in the same folder: `settings.py` defines
  `parse(get) -> <its frozen dataclass> | None` (`get(NAME)` is the environment variable's
  stripped value or None; None back means "not configured"), raising
  `bot.settings_parsing.SettingsError` that names the variable. `bot.settings.load_settings`
  finds every folder's settings.py the same way `providers()` finds provider.py (by name,
  with importlib: bot.settings is the bottom layer and never imports a provider
  statically) and keeps the result in the one `Settings`: `settings.providers["<name>"]`,
  read with `settings.provider("<name>", TheDataclass)`. So start-up still checks every
  setting and names the bad one. settings.py may import only bot.settings_parsing (and the
  standard library), so that dynamic import cannot make a cycle; .importlinter checks it.
  A field kept out of the dataclass's repr is shown masked by the dashboard, which lists
  the others as "<name>_<field>". A `pace_per_second` attribute, when it has one, is its
  route's default broadcast pace (`Settings.pace_for`; BROADCAST_PACE's "sms:<name>"
  overrides it): the Android pool's is its phones' pace times their number.
- Nothing else is registered anywhere: `providers()` imports each folder's provider.py in
  name order. A folder without provider.py is not a provider (it is skipped); a
  provider.py without `PROVIDER`, or whose `PROVIDER.name` differs from the folder's name,
  is an error raised at start (a provider half-installed must not be silently ignored).
- What the core gets from the registry, and where:
  - bot.runtime.default_channels: the adapters of each enabled provider with
    `default=True`, for its channels (the console for a channel nobody carries);
  - bot.runtime.default_routes: `{name: adapter}` of each enabled provider with
    `default=False` (messages and contacts that name the provider go through it);
  - bot.app: each provider's `webhook` blueprint, registered whether or not the provider
    is enabled (a webhook answers 403 until its secret setting is set), and exempted from
    CSRF by the dashboard (each webhook authenticates its caller itself);
  - the dashboard's settings page: `secret_settings` are masked; an adapter with a
    `balance` attribute (`.summary() -> str`) is shown there and on /readyz;
  - the outbox: a send error's `meaning` (`ErrorMeaning`), set by the provider's sender
    from its error table; a status report already mapped by the provider's webhook
    (`Provider.status`, `Provider.meaning`) through `Outbox.apply_status`.
- Besides the folder, a provider adds only its fake, testkit/fake_<name>.py, and its tests,
  tests/channels/<name>/ (and a README section on connecting it). .importlinter names no
  provider: its contracts match every folder by wildcard (`bot.channels.*.*`), so a new
  folder is checked as soon as it exists (only its webhook.py may import the wiring,
  nothing outside the provider folders imports its modules, its settings.py imports only
  the parsing helpers).
  Twilio, the channels' default adapter, is the exception: its settings are still the
  `twilio_*` fields of bot/settings.py.
"""

from __future__ import annotations

import importlib
from functools import cache

from flask import Blueprint

from bot.channels.base import Provider
from bot.settings import Settings, provider_modules

PROVIDER_MODULE = "provider"


class ProviderError(RuntimeError):
    """A provider folder is not installed as the contract above says."""


@cache
def providers() -> tuple[Provider, ...]:
    """Every installed provider, in name order (found once per process)."""
    found = []
    for name, module_name, module in provider_modules(PROVIDER_MODULE):
        provider = getattr(module, "PROVIDER", None)
        if not isinstance(provider, Provider):
            raise ProviderError(f"{module_name} defines no PROVIDER (a Provider)")
        if provider.name != name:
            raise ProviderError(
                f"{module_name}: PROVIDER.name is {provider.name!r}, its folder {name!r}"
            )
        found.append(provider)
    return tuple(found)


def enabled(settings: Settings) -> list[Provider]:
    """The installed providers these settings configure."""
    return [p for p in providers() if p.enabled(settings)]


def by_name(name: str) -> Provider | None:
    """The installed provider called `name`, if there is one."""
    return next((p for p in providers() if p.name == name), None)


def webhooks() -> list[Blueprint]:
    """The installed providers' webhook blueprints (bot.app registers them, the dashboard
    exempts them from CSRF), imported from each `Provider.webhook` "module:attribute"."""
    return [_blueprint(p.webhook) for p in providers() if p.webhook]


def _blueprint(target: str) -> Blueprint:
    module_name, _, attribute = target.partition(":")
    blueprint = getattr(importlib.import_module(module_name), attribute, None)
    if not isinstance(blueprint, Blueprint):
        raise ProviderError(f"{target} is not a Flask blueprint")
    return blueprint
