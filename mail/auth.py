"""Credential checks shared by SMTP AUTH and POP3 (USER/PASS, APOP, CRAM-MD5).

Password checks go through :meth:`bbs.users.UserBase.verify` (scrypt in a
worker thread). CRAM-MD5 (RFC 2195) and APOP (RFC 1939 section 7) need the
password itself: they work only when ``[Mail] AllowCramMD5`` is on, which
makes this server's user base keep the cleartext (filled in at each
successful password log-on to the mail server).
"""
from __future__ import annotations

import hashlib
import hmac

from bbs.errors import BBSError
from bbs.users import User, UserBase


class Secrets:
    """Checks mail log-ons against the BBS user base."""

    def __init__(self, users: UserBase, shared_secret: bool) -> None:
        #: ``users`` must have ``keep_cleartext`` set when ``shared_secret`` is.
        self.users = users
        self.shared_secret = shared_secret

    async def verify(self, name: str, password: str) -> User:
        """Check a name (alias, real name; see ``UserBase.find``) and password.

        Raises ``BBSError(AUTH_FAILED)``.
        """
        return await self.users.verify(name, password)

    async def _secret(self, name: str) -> tuple[User, str] | None:
        if not self.shared_secret:
            return None
        try:
            user = await self.users.find(name)
            secret = await self.users.cleartext(user.number)
        except BBSError:
            return None
        return (user, secret) if secret else None

    async def check_cram(self, name: str, challenge: bytes, digest: str) -> User | None:
        """The user whose CRAM-MD5 ``digest`` of ``challenge`` is right, or None."""
        found = await self._secret(name)
        if found is None:
            return None
        user, secret = found
        expected = hmac.new(secret.encode("utf-8"), challenge, hashlib.md5).hexdigest()
        return user if hmac.compare_digest(expected, digest.strip().lower()) else None

    async def check_apop(self, name: str, timestamp: str, digest: str) -> User | None:
        """The user whose APOP ``digest`` (MD5 of timestamp + secret) is right, or None."""
        found = await self._secret(name)
        if found is None:
            return None
        user, secret = found
        expected = hashlib.md5((timestamp + secret).encode("utf-8")).hexdigest()
        return user if hmac.compare_digest(expected, digest.strip().lower()) else None
