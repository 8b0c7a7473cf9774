"""The token-key sealer: rotation, refusal of anything it cannot vouch for, and no key shown."""

from __future__ import annotations

import base64

import pytest
from cryptography.fernet import Fernet

from bot.adapters.sealing import FernetSealer, generate_token_key, parse_token_keys
from bot.domain.errors import SealBroken

SECRET = "refresh-token-of-ada-4f1c"


def _key() -> bytes:
    return generate_token_key().encode("ascii")


def test_a_sealed_value_opens_to_the_plaintext_and_does_not_contain_it() -> None:
    sealer = FernetSealer([_key()])
    sealed = sealer.seal(SECRET)
    assert SECRET not in sealed
    assert sealer.open(sealed) == SECRET
    assert sealer.seal(SECRET) != sealed  # fresh IV every time
    assert sealer.open(sealer.seal("ünïcode ✓")) == "ünïcode ✓"


def test_rotation_the_old_keys_values_open_with_new_then_old() -> None:
    old, new = _key(), _key()
    sealed_before = FernetSealer([old]).seal(SECRET)
    rotated = FernetSealer([new, old])
    assert rotated.open(sealed_before) == SECRET
    # New values are sealed with the first key: the new key alone opens them.
    assert FernetSealer([new]).open(rotated.seal(SECRET)) == SECRET
    with pytest.raises(SealBroken):
        FernetSealer([old]).open(rotated.seal(SECRET))


def test_reseal_moves_a_value_to_the_newest_key() -> None:
    old, new = _key(), _key()
    sealed_before = FernetSealer([old]).seal(SECRET)
    resealed = FernetSealer([new, old]).reseal(sealed_before)
    assert FernetSealer([new]).open(resealed) == SECRET
    with pytest.raises(SealBroken):
        FernetSealer([old]).open(resealed)
    with pytest.raises(SealBroken):
        FernetSealer([_key()]).reseal(sealed_before)


@pytest.mark.parametrize(
    "damage",
    [
        lambda s: s[:-4] + ("AAAA" if not s.endswith("AAAA") else "BBBB"),  # flipped bytes
        lambda s: s[: len(s) // 2],  # truncated
        lambda s: "",
        lambda s: "not a sealed value at all",
        lambda s: "ünïcode",
    ],
)
def test_a_damaged_or_forged_value_is_refused(damage) -> None:  # type: ignore[no-untyped-def]
    sealer = FernetSealer([_key()])
    with pytest.raises(SealBroken):
        sealer.open(damage(sealer.seal(SECRET)))


def test_only_an_unrelated_key_raises_seal_broken_without_key_or_plaintext() -> None:
    key, unrelated = _key(), _key()
    sealed = FernetSealer([key]).seal(SECRET)
    with pytest.raises(SealBroken) as caught:
        FernetSealer([unrelated]).open(sealed)
    shown = str(caught.value) + repr(caught.value) + caught.value.user_message
    for secret in (SECRET, key.decode(), unrelated.decode(), sealed):
        assert secret not in shown
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_repr_shows_how_many_keys_never_a_key() -> None:
    keys = [_key(), _key()]
    sealer = FernetSealer(keys)
    assert repr(sealer) == "FernetSealer(2 keys)"
    assert repr(FernetSealer(keys[:1])) == "FernetSealer(1 key)"
    assert sealer.key_count == 2
    assert not any(key.decode() in repr(sealer) + str(sealer) for key in keys)
    assert not hasattr(sealer, "__dict__")  # no attribute a debugger or vars() would dump


def test_token_keys_are_comma_or_whitespace_separated_newest_first() -> None:
    a, b, c = generate_token_key(), generate_token_key(), generate_token_key()
    assert parse_token_keys(a) == [a.encode()]
    assert parse_token_keys(f" {a}, {b}\n{c} ") == [a.encode(), b.encode(), c.encode()]
    assert parse_token_keys(f"{a},,{b},") == [a.encode(), b.encode()]
    assert FernetSealer.from_setting(f"{a},{b}").key_count == 2
    assert len(a) == 44 and Fernet(a.encode())  # what `pimbot token-key` prints is a Fernet key


@pytest.mark.parametrize(
    ("second", "why"),
    [
        ("tooshort", "not base64 of 32 bytes"),
        (base64.urlsafe_b64encode(b"x" * 16).decode(), "16 bytes"),
        (base64.urlsafe_b64encode(b"x" * 33).decode(), "33 bytes"),
        (base64.b64encode(b"\xfb" * 32).decode(), "standard base64 (+ and /), not URL-safe"),
        ("é" * 44, "not ASCII"),
    ],
)
def test_a_malformed_key_is_named_by_position_and_never_echoed(second: str, why: str) -> None:
    good = generate_token_key()
    with pytest.raises(ValueError) as caught:
        parse_token_keys(f"{good},{second}")
    message = str(caught.value)
    assert message.startswith("key 2 of 2 is not a Fernet key"), why
    assert "`pimbot token-key`" in message
    assert second not in message and good not in message


def test_one_malformed_key_and_an_empty_setting_are_explained() -> None:
    with pytest.raises(ValueError, match=r"^the key is not a Fernet key"):
        parse_token_keys("abc")
    with pytest.raises(ValueError, match="no key given"):
        parse_token_keys(" , \n")
    with pytest.raises(ValueError):
        FernetSealer([])
