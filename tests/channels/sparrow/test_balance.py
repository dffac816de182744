"""The Sparrow account's credit balance on /readyz and on the dashboard's settings page."""

from __future__ import annotations

from bot.channels.base import TransientSendError
from bot.channels.sparrow.api import Credits
from bot.channels.sparrow.balance import Balance
from bot.channels.sparrow.sender import SparrowChannel
from bot.runtime import Runtime
from testkit.fake_sparrow import FakeSparrow
from testkit.servers import free_port
from tests.dashboard.support import add_user, signed_in


def test_readyz_shows_the_balance_and_stays_ready_when_sparrow_is_down(
    client, sparrow: FakeSparrow, runtime: Runtime
) -> None:  # type: ignore[no-untyped-def]
    body = client.get("/readyz").get_json()
    assert body["sparrow_balance"] == "ok (1000 credits available)"
    channel = runtime.outbox.routes["sparrow"]
    assert isinstance(channel, SparrowChannel)
    channel.base = f"http://127.0.0.1:{free_port()}"  # Sparrow gone
    channel.balance = Balance(channel.credits)
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.get_json()["sparrow_balance"].startswith("unavailable: Sparrow unreachable")


def test_the_balance_is_asked_at_most_once_a_minute() -> None:
    calls: list[int] = []
    now = [0.0]

    def fetch() -> Credits:
        calls.append(1)
        if len(calls) == 2:
            raise TransientSendError("Sparrow 1002: invalid token (SPARROW_TOKEN)", 1002)
        return Credits(0, 12)

    balance = Balance(fetch, clock=lambda: now[0])
    assert balance.summary() == "empty (0 credits available)"
    now[0] = 59
    assert balance.summary() == "empty (0 credits available)" and len(calls) == 1
    now[0] = 61
    assert balance.summary() == "unavailable: Sparrow 1002: invalid token (SPARROW_TOKEN)"


def test_the_settings_page_shows_the_balance_and_hides_the_tokens(app, runtime: Runtime) -> None:  # type: ignore[no-untyped-def]
    admin = add_user(runtime.db, "admin@example.org", "admin", "x")
    page = signed_in(app, runtime.db, admin).get("/dashboard/settings").get_data(as_text=True)
    assert "<th>sparrow</th><td>ok (1000 credits available)</td>" in page
    assert "<th>sparrow_token</th><td>(set)</td>" in page
    assert "<th>sparrow_inbound_token</th><td>(set)</td>" in page
    assert "inbound-secret" not in page and "sparrow-test-token" not in page
