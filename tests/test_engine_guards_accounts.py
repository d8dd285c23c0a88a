"""Account refusals the other tests left unchecked, on a real store: a user without roles or with a
name that is empty, too long or spaced is never created, and an account marked inactive is refused
by every way in (password, API token, session cookie) and by the human tasks it would complete."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from scopeflow.engine import accounts
from scopeflow.engine.models import User

PASSWORD = "long-enough-password"


def _names(engine) -> list[str]:
    with engine.sessions() as session:
        return sorted(session.scalars(select(User.name)))


@pytest.mark.parametrize(("name", "roles", "message"), [
    ("zed", [], "^a user needs at least one role$"),
    ("", ["auditor"], "^user name must be 1-100 characters without spaces$"),
    ("z" * 101, ["auditor"], "^user name must be 1-100 characters without spaces$"),
    ("z\tz", ["auditor"], "^user name must be 1-100 characters without spaces$"),
])
def test_a_user_is_not_created_without_roles_or_with_a_bad_name(engine, name, roles, message):
    with pytest.raises(accounts.AccountError, match=message):
        accounts.create_user(engine.sessions, name, roles, PASSWORD)
    assert _names(engine) == []


def test_a_name_of_exactly_the_limit_is_accepted(engine):
    assert accounts.create_user(engine.sessions, "z" * 100, ["auditor"], PASSWORD).name == "z" * 100


def test_an_inactive_account_is_refused_by_password_token_and_session(engine):
    made = accounts.create_user(engine.sessions, "ivy", ["reviewer"], PASSWORD)
    token = accounts.issue_api_token(engine.sessions, "ivy")
    signed_in = accounts.authenticate(engine.sessions, "ivy", PASSWORD)
    assert accounts.account_by_token(engine.sessions, token).name == "ivy"
    assert accounts.account_by_session(engine.sessions, signed_in.get_id()).name == "ivy"
    with engine.sessions.begin() as session:
        session.get(User, made.id).active = False
    with pytest.raises(accounts.AccountError, match="wrong user name or password"):
        accounts.authenticate(engine.sessions, "ivy", PASSWORD)
    assert accounts.account_by_token(engine.sessions, token) is None
    assert accounts.account_by_session(engine.sessions, signed_in.get_id()) is None


def test_sign_out_voids_every_earlier_session_of_the_user(engine):
    accounts.create_user(engine.sessions, "ivy", ["reviewer"], PASSWORD)
    first = accounts.authenticate(engine.sessions, "ivy", PASSWORD)
    accounts.end_sessions(engine.sessions, first.id)
    assert accounts.account_by_session(engine.sessions, first.get_id()) is None
    again = accounts.authenticate(engine.sessions, "ivy", PASSWORD)
    assert accounts.account_by_session(engine.sessions, again.get_id()).name == "ivy"
