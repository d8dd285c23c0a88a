"""The web UI's name for :mod:`scopeflow.engine.accounts`, where accounts live since the views stopped
querying rows themselves; kept so scripts that import ``scopeflow.ui.accounts`` (the UI benchmark)
keep working. New code imports the engine module."""

from scopeflow.engine.accounts import (
    Account,
    AccountError,
    account_by_session,
    account_by_token,
    authenticate,
    create_user,
    end_sessions,
    issue_api_token,
    list_users,
    lock,
    unlock,
    user_count,
)

__all__ = ["Account", "AccountError", "account_by_session", "account_by_token", "authenticate", "create_user",
           "end_sessions", "issue_api_token", "list_users", "lock", "unlock", "user_count"]
