"""Who decided a human task: an account holding the lane's role, or a named automatic policy.

The engine checks this for every completion, whatever the channel (CLI, API, web UI), so "a person
approved" on a span means an existing, active account that holds the role the task's lane requires
(or ``admin``) made the decision. Automatic answers (``submit --yes``) are not people: they are
recorded as automated, with the policy that decided, and evidence rules that require a person fail
on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from scopeflow.engine.models import User, utcnow
from scopeflow.program import program

ADMIN_ROLE = "admin"
YES_POLICY = "--yes"   # `scopeflow submit --yes`: every approval and clarification takes its default


@dataclass(frozen=True)
class Decider:
    """Who completes a human task: ``roles`` are looked up from the account, never copied from a lane."""

    actor: str
    roles: tuple[str, ...] = ()
    policy: str | None = None   # set only for automatic decisions

    @property
    def automated(self) -> bool:
        return self.policy is not None


class AccountRefused(Exception):
    """The named actor may not complete the task; ``forbidden`` separates 'no such account' from
    'account lacks the role' (a 403 in the API)."""

    def __init__(self, message: str, *, forbidden: bool):
        super().__init__(message)
        self.forbidden = forbidden


def automatic(policy: str, on_behalf_of: str = "cli") -> Decider:
    """A decision taken by a policy (``--yes``), recorded as automated."""
    return Decider(actor=f"{on_behalf_of} (auto: {policy})", policy=policy)


def _locked(account: User) -> bool:
    return account.locked_until is not None and account.locked_until > utcnow()


def _holds(account: User, role: str) -> bool:
    roles = account.roles or ()
    return not role or role in roles or ADMIN_ROLE in roles


def accounts_for(session: Session, role: str) -> list[str]:
    """Names of the accounts that :func:`person` would accept for a task of ``role`` (sorted)."""
    accounts = session.scalars(select(User).where(User.active.is_(True)).order_by(User.name))
    return [a.name for a in accounts if not _locked(a) and _holds(a, role)]


def person(session: Session, name: str, required_role: str, task_name: str) -> Decider:
    """The account ``name`` if it exists, is active and may act in ``required_role``; else refused."""
    account = session.scalar(select(User).where(User.name == name))
    locked = account is not None and _locked(account)
    if account is None or not account.active or locked:
        state = "is not an account" if account is None else "is locked" if locked else "is deactivated"
        raise AccountRefused(
            f"{name!r} {state}: human tasks are completed by accounts (create one with "
            f"`{program()} users add {name} --role {required_role or 'submitter'}`)", forbidden=False)
    roles = tuple(account.roles or ())
    if not _holds(account, required_role):
        held = ", ".join(roles) or "none"
        raise AccountRefused(f"{name} may not complete '{task_name}': it needs the role {required_role} "
                             f"(held: {held})", forbidden=True)
    return Decider(actor=name, roles=roles)
