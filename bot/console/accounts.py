"""Console accounts: invites, passwords, the TOTP second factor, sign-in, sessions.

Why these libraries: argon2-cffi (argon2id, the OWASP default) hashes passwords; pyotp
implements RFC 6238; the common-password list is zxcvbn's (30,000 leaked passwords), and
zxcvbn's score refuses guessable ones of any length; TOTP secrets are encrypted at rest with
Fernet (cryptography) under a key that is not in the database (bot.console.keys).

Every outcome is audited in the transaction that causes it. Nothing here reads the wall clock:
`now` comes from the runtime's clock, so expiry and lockout are tested with the fake clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiosqlite
import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from bot.console.keys import SecretBox
from bot.escalation.permissions import ROLES
from bot.services.runtime import Runtime
from storage import audit
from storage import console as store

INVITE_VALID = timedelta(hours=72)
SESSION_IDLE = timedelta(minutes=30)
SESSION_MAX = timedelta(hours=12)
MAX_FAILED = 5
MIN_PASSWORD = 12
ISSUER = "NCT06438809 diary"

_hasher = PasswordHasher()
_COMMON = frozenset(FREQUENCY_LISTS["passwords"])


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def actor(staff_id: int) -> str:
    """The audit actor of a staff member, the same in Telegram and in the console."""
    return f"staff:{staff_id}"


class AccountError(ValueError):
    """A refusal whose `code` names a localized message (bot.console.messages)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def password_problem(password: str, *, name: str = "", email: str = "") -> str | None:
    """Why a new password is refused (a message code), or None."""
    if len(password) < MIN_PASSWORD:
        return "password_short"
    if len(password) > 256:
        return "password_long"
    if password.lower() in _COMMON or password.lower().rstrip("0123456789!") in _COMMON:
        return "password_common"
    if zxcvbn(password[:100], user_inputs=[name, email, "diarybot", "nct06438809"])["score"] < 3:
        return "password_weak"
    return None


# --------------------------------------------------------------------------- invites


@dataclass(frozen=True)
class Invite:
    staff_id: int
    token: str  # shown once (link or email); only its hash is stored


async def create_account(
    rt: Runtime,
    conn: aiosqlite.Connection,
    *,
    email: str,
    name: str,
    role: str,
    lang: str,
    telegram_id: int | None,
    by: str,
) -> Invite:
    """Add (or link) a staff member with an email and issue their one-time invite.

    With a Telegram id the console account *is* that Telegram staff member (one identity in the
    audit trail); without one the member gets a negative id that Telegram never uses.
    """
    if role not in ROLES:
        raise AccountError("bad_role")
    email = email.strip()
    if "@" not in email or len(email) > 254 or any(c.isspace() for c in email):
        raise AccountError("bad_email")
    now = rt.now()
    holder = await store.account_by_email(conn, email)
    if telegram_id is not None:
        existing = await store.account(conn, telegram_id)
        if holder is not None and holder.staff_id != telegram_id:
            raise AccountError("email_taken")
        if existing is None:
            await store.insert_account(conn, telegram_id, role, name, lang, email, now)
        else:
            await store.set_email(conn, telegram_id, email)
        staff_id = telegram_id
    else:
        if holder is not None:
            raise AccountError("email_taken")
        staff_id = await store.next_console_only_id(conn)
        await store.insert_account(conn, staff_id, role, name, lang, email, now)
    await audit.record(
        conn,
        now,
        by,
        "console_account",
        entity=actor(staff_id),
        new={"email": email, "role": role, "telegram": telegram_id is not None},
    )
    return await invite(rt, conn, staff_id, by=by)


async def invite(rt: Runtime, conn: aiosqlite.Connection, staff_id: int, *, by: str) -> Invite:
    """A new one-time link (the old one stops working); it resets password and TOTP."""
    now = rt.now()
    token = secrets.token_urlsafe(32)
    await store.add_invite(conn, token_hash(token), staff_id, now, now + INVITE_VALID)
    await audit.record(conn, now, by, "console_invite", entity=actor(staff_id))
    return Invite(staff_id, token)


async def invited(rt: Runtime, token: str) -> store.Account | None:
    """The account a usable invite belongs to."""
    staff_id = await store.invite(rt.db.conn, token_hash(token), rt.now())
    if staff_id is None:
        return None
    acc = await store.account(rt.db.conn, staff_id)
    return acc if acc is not None and acc.active else None


async def set_password(rt: Runtime, box: SecretBox, token: str, password: str) -> str:
    """First step of an invite: the password; returns the new TOTP secret to show."""
    now = rt.now()
    hashed = await asyncio.to_thread(_hasher.hash, password[:256])
    async with rt.db.transaction() as conn:
        staff_id = await store.invite(conn, token_hash(token), now)
        acc = await store.account(conn, staff_id) if staff_id is not None else None
        if acc is None or not acc.active:
            raise AccountError("invite_invalid")
        problem = password_problem(password, name=acc.name, email=acc.email or "")
        if problem:
            raise AccountError(problem)
        secret = pyotp.random_base32()
        await store.update(
            conn,
            acc.staff_id,
            password_hash=hashed,
            totp_secret=box.encrypt(secret),
            totp_confirmed=0,
            totp_last_step=None,
            failed_logins=0,
            locked_at=None,
        )
        await store.revoke_all(conn, acc.staff_id, now)
        await audit.record(conn, now, actor(acc.staff_id), "console_password_set")
    return secret


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)


async def confirm_totp(rt: Runtime, box: SecretBox, token: str, code: str) -> store.Account:
    """Second step: a code from the authenticator proves it is set up; the invite is used."""
    now = rt.now()
    async with rt.db.transaction() as conn:
        staff_id = await store.invite(conn, token_hash(token), now)
        acc = await store.account(conn, staff_id) if staff_id is not None else None
        if acc is None or not acc.active or acc.totp_secret is None:
            raise AccountError("invite_invalid")
        step = _totp_step(box.decrypt(acc.totp_secret), code, now, None)
        if step is None:
            raise AccountError("code_wrong")
        await store.update(conn, acc.staff_id, totp_confirmed=1, totp_last_step=step)
        await store.use_invite(conn, token_hash(token), now)
        await audit.record(conn, now, actor(acc.staff_id), "console_totp_set")
    return acc


def _totp_step(secret: str, code: str, now: datetime, last: int | None) -> int | None:
    """The accepted time step for `code` (±1 step of drift), never one already used."""
    code = code.strip().replace(" ", "")
    if not (code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(secret)
    here = int(now.timestamp()) // totp.interval
    for step in (here, here - 1, here + 1):
        if last is not None and step <= last:
            continue
        if secrets.compare_digest(totp.at(step * totp.interval), code):
            return step
    return None


# --------------------------------------------------------------------------- sign-in


@dataclass(frozen=True)
class SignedIn:
    account: store.Account
    cookie: str  # the session token (cookie value); only its hash is stored
    csrf: str


async def sign_in(rt: Runtime, box: SecretBox, email: str, password: str, code: str) -> SignedIn:
    """Password and TOTP together. Five failures lock the account until an admin re-invites.

    The same message for an unknown email, a wrong password and a wrong code: the form tells an
    attacker nothing about which part was right.
    """
    now = rt.now()
    # argon2 takes tens of milliseconds on purpose: check it in a thread, before taking the
    # write lock, against the hash read now (a hash changed meanwhile counts as a mismatch).
    before = await store.account_by_email(rt.db.conn, email)
    checked = before.password_hash if before is not None else None
    ok = checked is not None and await asyncio.to_thread(_password_ok, checked, password[:256])
    # Refusals are recorded and committed first, then raised: raising inside the transaction
    # would roll back the failure count along with everything else.
    async with rt.db.transaction() as conn:
        refusal, done = await _sign_in(conn, box, email, checked if ok else None, code, now)
    if done is None:
        raise AccountError(refusal)
    return done


async def _sign_in(
    conn: aiosqlite.Connection,
    box: SecretBox,
    email: str,
    matched_hash: str | None,
    code: str,
    now: datetime,
) -> tuple[str, SignedIn | None]:
    """`matched_hash`: the password hash the given password matched, or None."""
    acc = await store.account_by_email(conn, email)
    if acc is None or not acc.active or acc.password_hash is None:
        await audit.record(conn, now, "system", "console_login_failed", new={"reason": "unknown"})
        return "login_failed", None
    who = actor(acc.staff_id)
    if acc.locked:
        await audit.record(conn, now, who, "console_login_refused_locked")
        return "locked", None
    if not acc.totp_confirmed or acc.totp_secret is None:
        await audit.record(conn, now, who, "console_login_failed", new={"reason": "no_totp"})
        return "login_failed", None
    step = None
    if matched_hash is not None and matched_hash == acc.password_hash:
        step = _totp_step(box.decrypt(acc.totp_secret), code, now, acc.totp_last_step)
    if step is None:
        locked = await _count_failure(conn, acc, now, "console_login_failed")
        return ("locked" if locked else "login_failed"), None
    cookie, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await store.update(conn, acc.staff_id, failed_logins=0, totp_last_step=step)
    await store.add_session(conn, token_hash(cookie), acc.staff_id, csrf, now)
    await audit.record(conn, now, who, "console_login")
    return "", SignedIn(acc, cookie, csrf)


async def _count_failure(
    conn: aiosqlite.Connection, acc: store.Account, now: datetime, action: str
) -> bool:
    """One more failed password or code; the fifth locks the account and ends its sessions.
    Returns whether it is now locked."""
    failed = acc.failed_logins + 1
    locked = failed >= MAX_FAILED
    await store.update(conn, acc.staff_id, failed_logins=failed, locked_at=now if locked else None)
    await audit.record(conn, now, actor(acc.staff_id), action, new={"failed": failed})
    if locked:
        await store.revoke_all(conn, acc.staff_id, now)
        await audit.record(conn, now, "system", "console_locked", entity=actor(acc.staff_id))
    return locked


def _password_ok(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True)
class Current:
    account: store.Account
    token_hash: str
    csrf: str


async def current(rt: Runtime, cookie: str | None) -> Current | None:
    """The signed-in member behind a session cookie, or None (and the session ends) when it is
    revoked, idle for 30 minutes, older than 12 hours, or its member was removed or locked."""
    if not cookie or len(cookie) > 100:
        return None
    now = rt.now()
    th = token_hash(cookie)
    sess = await store.session(rt.db.conn, th)
    if sess is None or sess.revoked:
        return None
    acc = await store.account(rt.db.conn, sess.staff_id)
    expired = now - sess.seen_at > SESSION_IDLE or now - sess.created_at > SESSION_MAX
    if expired or acc is None or not acc.active or acc.locked:
        async with rt.db.transaction() as conn:
            await store.revoke_session(conn, th, now)
            await audit.record(
                conn,
                now,
                actor(sess.staff_id),
                "console_session_ended",
                new={"reason": "expired" if expired else "account"},
            )
        return None
    # Touch at most once a minute: a page view is not a write per request.
    if now - sess.seen_at > timedelta(minutes=1):
        async with rt.db.transaction() as conn:
            await store.touch_session(conn, th, now)
    return Current(acc, th, sess.csrf)


async def check_signature(rt: Runtime, who: Current, password: str) -> bool:
    """The second component of an electronic signature: the signed-in member's own password.
    A wrong one is audited and counts towards the lockout, like a failed sign-in."""
    now = rt.now()
    stored = who.account.password_hash
    if stored is not None and await asyncio.to_thread(_password_ok, stored, password[:256]):
        return True
    async with rt.db.transaction() as conn:
        acc = await store.account(conn, who.account.staff_id)
        if acc is not None:
            await _count_failure(conn, acc, now, "e_signature_failed")
    return False


async def sign_out(rt: Runtime, who: Current, *, everywhere: bool) -> None:
    now = rt.now()
    async with rt.db.transaction() as conn:
        if everywhere:
            n = await store.revoke_all(conn, who.account.staff_id, now)
            await audit.record(
                conn, now, actor(who.account.staff_id), "console_logout_all", new={"sessions": n}
            )
        else:
            await store.revoke_session(conn, who.token_hash, now)
            await audit.record(conn, now, actor(who.account.staff_id), "console_logout")
