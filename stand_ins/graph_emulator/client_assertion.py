"""Checking a certificate client assertion (RFC 7523 JWT) the way Entra does."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa

from stand_ins.graph_emulator import jws
from stand_ins.graph_emulator.sts_errors import invalid_client
from stand_ins.graph_emulator.tenant import App

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
CLOCK_SKEW = 300  # seconds Entra tolerates on assertion times


def verify_client_assertion(assertion: str, app: App, token_endpoint: str, now: float) -> None:
    """Signature by the app's registered certificate, iss/sub, aud and lifetime; or StsError."""
    try:
        header, claims, signing_input, signature = jws.split(assertion)
    except jws.MalformedToken:
        raise invalid_client(50027, "JWT token is invalid or malformed.") from None
    certificate = app.certificate()
    if certificate is None or not _names_certificate(header, certificate):
        raise invalid_client(
            700027,
            "The certificate with identifier used to sign the client assertion is not "
            f"registered on application. [Reason - The key was not found., Thumbprint of key "
            f"used by client: '{header.get('x5t', header.get('x5t#S256', ''))}']",
        )
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey) or not jws.verify_rsa(
        str(header.get("alg")), public_key, signing_input, signature
    ):
        raise invalid_client(
            700027,
            "Client assertion contains an invalid signature. [Reason - The "
            "provided signature value did not match the expected signature value.]",
        )
    if claims.get("iss") != app.client_id or claims.get("sub") != app.client_id:
        raise invalid_client(
            700021, "Client assertion application identifier doesn't match 'client_id' parameter."
        )
    if claims.get("aud") != token_endpoint:
        raise invalid_client(700023, "Client assertion audience claim does not match Realm issuer.")
    expires, not_before = claims.get("exp"), claims.get("nbf", 0)
    if (
        not isinstance(expires, int | float)
        or expires + CLOCK_SKEW < now
        or (isinstance(not_before, int | float) and not_before - CLOCK_SKEW > now)
    ):
        raise invalid_client(700024, "Client assertion is not within its valid time range.")


def _names_certificate(header: Mapping[str, Any], certificate: x509.Certificate) -> bool:
    """Does the assertion header identify ``certificate`` (x5t, x5t#S256 or an x5c chain)?"""
    der_sha1 = jws.b64url_encode(certificate.fingerprint(hashes.SHA1()))
    der_sha256 = jws.b64url_encode(certificate.fingerprint(hashes.SHA256()))
    # msal pads its thumbprints with "="; Entra accepts both forms.
    x5t, x5t_s256 = (str(header.get(name, "")).rstrip("=") for name in ("x5t", "x5t#S256"))
    if x5t == der_sha1 or x5t_s256 == der_sha256:
        return True
    chain = header.get("x5c")
    if isinstance(chain, list) and chain:
        leaf = x509.load_der_x509_certificate(base64.b64decode(str(chain[0])))
        return leaf == certificate
    return False
