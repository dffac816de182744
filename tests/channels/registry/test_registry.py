"""bot/channels/registry.py: providers are the folders with a provider.py, checked."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import bot.channels
from bot.channels import registry
from bot.channels.base import ErrorMeaning
from bot.core.status import MessageStatus
from bot.settings import Settings, SettingsError


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory searched for provider folders as if it were bot/channels/."""
    monkeypatch.setattr(bot.channels, "__path__", [*bot.channels.__path__, str(tmp_path)])
    registry.providers.cache_clear()
    yield tmp_path
    monkeypatch.undo()
    for name in [m for m in sys.modules if m.startswith(("bot.channels.kite", "bot.channels.owl"))]:
        del sys.modules[name]
    registry.providers.cache_clear()


def _folder(root: Path, name: str, provider: str | None) -> None:
    (root / name).mkdir()
    (root / name / "__init__.py").write_text("")
    if provider is not None:
        (root / name / "provider.py").write_text(provider)


def test_twilio_and_sparrow_are_installed_with_their_webhooks() -> None:
    names = [p.name for p in registry.providers()]
    assert {"twilio", "sparrow"} <= set(names) and names == sorted(names)
    prefixes = {bp.url_prefix for bp in registry.webhooks()}
    assert {"/webhooks/twilio", "/webhooks/sparrow"} <= prefixes
    twilio = registry.by_name("twilio")
    assert twilio is not None and twilio.default
    assert twilio.status("Delivered") == MessageStatus.DELIVERED
    assert twilio.status("partially_delivered") == "partially_delivered"  # kept, not applied
    assert twilio.meaning(21610) is ErrorMeaning.OPTED_OUT
    assert twilio.meaning(30006) is ErrorMeaning.BAD_NUMBER
    assert twilio.meaning(99999) is ErrorMeaning.FAILED
    assert twilio.meaning(99999, transient=True) is ErrorMeaning.RETRY
    sparrow = registry.by_name("sparrow")
    assert sparrow is not None and not sparrow.default
    assert sparrow.meaning(1007) is ErrorMeaning.BAD_NUMBER
    assert sparrow.meaning(1012) is ErrorMeaning.RETRY  # out of credit: the message is fine


def test_a_folder_without_provider_py_is_not_a_provider(plugins: Path) -> None:
    _folder(plugins, "kite", None)
    assert "kite" not in [p.name for p in registry.providers()]


def test_a_provider_py_without_provider_is_an_error(plugins: Path) -> None:
    _folder(plugins, "kite", "X = 1\n")
    with pytest.raises(registry.ProviderError, match="defines no PROVIDER"):
        registry.providers()


def test_a_provider_named_unlike_its_folder_is_an_error(plugins: Path) -> None:
    _folder(
        plugins,
        "owl",
        "from bot.channels.base import Provider\n"
        "PROVIDER = Provider(name='hawk', channels=(), enabled=bool, make_senders=dict)\n",
    )
    with pytest.raises(registry.ProviderError, match="'hawk', its folder 'owl'"):
        registry.providers()


def test_a_settings_py_without_parse_stops_start_up(plugins: Path) -> None:
    _folder(plugins, "kite", None)
    (plugins / "kite" / "settings.py").write_text("KITE = 1\n")
    with pytest.raises(SettingsError, match=r"bot\.channels\.kite\.settings defines no parse"):
        Settings.from_mapping({"VAR_DIR": str(plugins / "var"), "SECRET_KEY": "x" * 32})


def test_a_folder_without_settings_py_has_no_settings(plugins: Path) -> None:
    _folder(plugins, "kite", None)
    settings = Settings.from_mapping({"VAR_DIR": str(plugins / "var"), "SECRET_KEY": "x" * 32})
    assert "kite" not in settings.providers
    assert {"sparrow", "android"} <= set(settings.providers)
