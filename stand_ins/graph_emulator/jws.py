"""Compact JWS (JWT) encoding and verification with ``cryptography`` only.

The emulator signs its own access tokens with HS256 (a per-run secret: tokens are opaque to
clients, as Graph's are), and verifies client assertions signed RS256 or PS256 by an app's key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa


class MalformedToken(ValueError):
    """Not three base64url parts of JSON header, JSON payload and signature."""


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def split(token: str) -> tuple[dict[str, Any], dict[str, Any], bytes, bytes]:
    """(header, claims, signing input, signature) of a compact JWS; MalformedToken otherwise."""
    parts = token.split(".")
    if len(parts) != 3:
        raise MalformedToken("a JWS has three dot-separated parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
        signature = b64url_decode(parts[2])
    except ValueError as error:
        raise MalformedToken(str(error)) from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise MalformedToken("header and payload must be JSON objects")
    return header, claims, f"{parts[0]}.{parts[1]}".encode("ascii"), signature


def sign_hs256(claims: dict[str, Any], key: bytes) -> str:
    header = b64url_encode(json.dumps({"typ": "JWT", "alg": "HS256"}).encode())
    payload = b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(key, f"{header}.{payload}".encode("ascii"), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64url_encode(signature)}"


def sign_rs256(claims: dict[str, Any], key: rsa.RSAPrivateKey, key_id: str) -> str:
    header = b64url_encode(json.dumps({"typ": "JWT", "alg": "RS256", "kid": key_id}).encode())
    payload = b64url_encode(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64url_encode(signature)}"


def verify_hs256(signing_input: bytes, signature: bytes, key: bytes) -> bool:
    expected = hmac.new(key, signing_input, hashlib.sha256).digest()
    return hmac.compare_digest(expected, signature)


def verify_rsa(
    alg: str, public_key: rsa.RSAPublicKey, signing_input: bytes, signature: bytes
) -> bool:
    """RS256 or PS256 (RFC 7518: PSS with MGF1-SHA256 and a 32-byte salt)."""
    if alg == "RS256":
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
    elif alg == "PS256":
        pad = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    else:
        return False
    try:
        public_key.verify(signature, signing_input, pad, hashes.SHA256())
    except InvalidSignature:
        return False
    return True
