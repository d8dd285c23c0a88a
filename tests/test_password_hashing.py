"""The product hashes passwords with werkzeug's scrypt; only the test suite's accounts use the cheap
method ``conftest.FAST_PASSWORD_HASH`` (for speed), and a login checks whichever method a hash names."""

from __future__ import annotations

import pytest
from werkzeug import security

from scopeflow.engine import accounts
from scopeflow.engine.models import User
from tests.conftest import FAST_PASSWORD_HASH


def stored_hash(engine, name: str) -> str:
    with engine.sessions() as session:
        return session.query(User).filter_by(name=name).one().password_hash


def test_the_product_hashes_passwords_with_scrypt(engine, monkeypatch):
    monkeypatch.setattr(accounts, "generate_password_hash", security.generate_password_hash)
    accounts.create_user(engine.sessions, "real", ["auditor"], "a long passphrase")
    assert stored_hash(engine, "real").startswith("scrypt:")
    assert accounts.authenticate(engine.sessions, "real", "a long passphrase").name == "real"


def test_the_suite_accounts_use_the_fast_method_and_still_refuse_a_wrong_password(engine):
    accounts.create_user(engine.sessions, "quick", ["auditor"], "a long passphrase")
    assert stored_hash(engine, "quick").startswith(FAST_PASSWORD_HASH + "$")
    assert accounts.authenticate(engine.sessions, "quick", "a long passphrase").name == "quick"
    with pytest.raises(accounts.AccountError, match="wrong user name or password"):
        accounts.authenticate(engine.sessions, "quick", "wrong")
