"""Sealing with the token key: Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``.

What pimbot must never keep in the clear (people's msal token caches, the PKCE verifier of a
sign-in in progress) is sealed with ``PIMBOT_TOKEN_KEY`` before it reaches the database.
Several keys may be configured for rotation: the first one seals, every one opens. Nothing
here ever puts a key or a plaintext into an error message, a log line or a repr.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot.domain.errors import SealBroken

_KEY_BYTES = 32  # Fernet: 16 bytes signing key + 16 bytes encryption key
_SEPARATORS = re.compile(r"[\s,]+")
_URLSAFE_BASE64 = re.compile(r"[A-Za-z0-9_-]+={0,2}")
KEY_HELP = "`pimbot token-key` prints a fresh one"


def generate_token_key() -> str:
    """A new random Fernet key, in the text form ``PIMBOT_TOKEN_KEY`` takes."""
    return Fernet.generate_key().decode("ascii")


def parse_token_keys(raw: str) -> list[bytes]:
    """The keys of ``PIMBOT_TOKEN_KEY``: comma- or whitespace-separated, newest first.

    Each must be 32 bytes in URL-safe base64 (44 characters, as ``pimbot token-key`` prints).
    A malformed key is named by its position only: the value itself is a secret, and a typo'd
    key is still most of a real one.
    """
    parts = [part for part in _SEPARATORS.split(raw.strip()) if part]
    if not parts:
        raise ValueError(f"no key given ({KEY_HELP})")
    keys: list[bytes] = []
    for position, part in enumerate(parts, start=1):
        if not _is_fernet_key(part):
            where = f"key {position} of {len(parts)}" if len(parts) > 1 else "the key"
            raise ValueError(
                f"{where} is not a Fernet key (44 characters of URL-safe base64 encoding "
                f"32 bytes; {KEY_HELP})"
            )
        keys.append(part.encode("ascii"))
    return keys


def _is_fernet_key(text: str) -> bool:
    # The URL-safe alphabet only: b64decode(altchars=...) would also take "+" and "/".
    if not _URLSAFE_BASE64.fullmatch(text):
        return False
    try:
        decoded = base64.urlsafe_b64decode(text.encode("ascii"))
    except (binascii.Error, ValueError):
        return False
    return len(decoded) == _KEY_BYTES


class FernetSealer:
    """The ``Sealer`` port over ``MultiFernet``: seals with ``keys[0]``, opens with any key.

    Rotation: put the new key first in ``PIMBOT_TOKEN_KEY`` and keep the old one after it;
    values sealed with the old key still open, and ``reseal`` moves one to the new key.
    """

    __slots__ = ("_fernet", "_key_count")

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a sealer needs at least one key")
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        self._key_count = len(keys)

    @classmethod
    def from_setting(cls, raw: str) -> FernetSealer:
        """Built from the text of ``PIMBOT_TOKEN_KEY`` (see ``parse_token_keys``)."""
        return cls(parse_token_keys(raw))

    @property
    def key_count(self) -> int:
        return self._key_count

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        """The plaintext; SealBroken if ``sealed`` is forged, damaged or under no key held."""
        try:
            return self._fernet.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeError, ValueError, TypeError):
            raise _broken() from None

    def reseal(self, sealed: str) -> str:
        """``sealed`` sealed again with the newest key (a no-op in effect if it already is);
        SealBroken if no configured key opens it."""
        try:
            return self._fernet.rotate(sealed.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError, ValueError, TypeError):
            raise _broken() from None

    def __repr__(self) -> str:
        return f"FernetSealer({self._key_count} key{'s' if self._key_count != 1 else ''})"


def _broken() -> SealBroken:
    return SealBroken(
        "a sealed value did not open: it was damaged, or sealed with a key PIMBOT_TOKEN_KEY "
        "no longer holds (the person must sign in again)"
    )
