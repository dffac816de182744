"""Random input to every dashboard form, as every role: never a 500, and a role that may not
use a route changes nothing in the database, whatever it sends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from bot.db.models import Base
from bot.runtime import Runtime
from tests.dashboard.conftest import Accounts
from tests.dashboard.support import FAILING_TRAINER, csrf_token
from tests.dashboard.test_access import EXPECTED, ROLES, _seed
from tests.support.phone import Phone

# Routes whose whole point is to end the session: fuzzing them would sign the client out.
SKIPPED = {"dashboard.logout"}
FIELDS = [
    "title", "body_en", "body_ne", "groups", "languages", "channels", "district", "ward",
    "schedule", "send_at", "every", "survey_key", "action", "email", "password", "new_password",
    "confirm", "role", "phone", "name", "active", "text", "intent", "answer", "status", "body",
    "code", "recovery_code", "reason", "file", "note", "q", "before",
]  # fmt: skip
values = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=80),
    st.sampled_from(["", "0", "-1", "999999999999", "now", "recurring", "* * * * *", "admin",
                     "<script>x</script>", "'; DROP TABLE users; --", "=1+1", "ward-3"]),
)  # fmt: skip
forms = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(min_size=1, max_size=12)), values, max_size=6
)


def _counts(runtime: Runtime) -> dict[str, int]:
    with runtime.db.read() as session:
        return {
            table.name: int(session.scalar(select(func.count()).select_from(table)) or 0)
            for table in Base.metadata.sorted_tables
        }


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
@pytest.mark.parametrize("settings_overrides", [FAILING_TRAINER])
def test_random_forms_never_crash_and_the_unauthorised_change_nothing(
    app: Flask,
    runtime: Runtime,
    phone: Phone,
    accounts: Accounts,
    as_role: Callable[[str], FlaskClient],
    data: st.DataObject,
) -> None:
    seeded: dict[str, Any] = app.config.setdefault("_fuzz_seed", {})
    if not seeded:
        seeded.update(_seed(runtime, phone, accounts))
    rules = sorted(
        (
            rule
            for rule in app.url_map.iter_rules()
            if rule.endpoint.startswith("dashboard.")
            and "POST" in (rule.methods or ())
            and rule.endpoint not in SKIPPED
        ),
        key=lambda r: r.rule,
    )
    rule = data.draw(st.sampled_from(rules), label="route")
    role = data.draw(st.sampled_from(ROLES), label="role")
    form = data.draw(forms, label="form")
    with_token = data.draw(st.booleans(), label="with CSRF token")
    client = as_role(role)
    token = csrf_token(client, "/dashboard/login")
    if with_token:
        form = form | {"csrf_token": token}
    with app.test_request_context():
        from flask import url_for

        url = url_for(rule.endpoint, **{arg: seeded[arg] for arg in rule.arguments})
    before = _counts(runtime)
    response = client.post(url, data=form)
    where = f"POST {rule.endpoint} as {role}: {response.status_code}"
    assert response.status_code < 500, where
    allowed = role in EXPECTED.get(rule.endpoint, frozenset())
    if not allowed or not with_token:
        assert response.status_code in (302, 303, 400, 403, 404), where
        after = _counts(runtime)
        # A refused request may leave an audit line (a login attempt), nothing else.
        changed = {t for t in after if after[t] != before[t]} - {"audit_events"}
        assert not changed, f"{where} changed {changed}"
