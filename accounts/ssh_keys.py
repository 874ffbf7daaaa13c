"""OpenSSH public key parsing: validation, size rules and the `ssh-keygen -lf` fingerprint."""

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key

MIN_RSA_BITS = 2048
SUPPORTED_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)
MAX_KEY_LENGTH = 16 * 1024


class InvalidSshKey(ValueError):
    """The text is not an acceptable OpenSSH public key; `code` says why."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


@dataclass(frozen=True)
class ParsedSshKey:
    key_type: str
    bits: int
    fingerprint: str
    comment: str
    normalized: str


def fingerprint_of(blob: bytes) -> str:
    """SHA256 fingerprint exactly as `ssh-keygen -lf` prints it (unpadded base64)."""
    digest = hashlib.sha256(blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def _bits_of(key) -> int:
    if isinstance(key, ed25519.Ed25519PublicKey):
        return 256
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    if isinstance(key, rsa.RSAPublicKey):
        return key.key_size
    raise InvalidSshKey("unsupported_key_type", "This key type is not supported.")


def parse_public_key(text: str) -> ParsedSshKey:
    """Validate one OpenSSH public key line and describe it; raise InvalidSshKey if unusable."""
    text = (text or "").strip()
    if "PRIVATE KEY" in text:
        raise InvalidSshKey(
            "private_key",
            "This is a private key. Paste the public key (the .pub file), and keep the "
            "private key secret.",
        )
    if not text:
        raise InvalidSshKey("invalid_ssh_key", "The public key is empty.")
    if len(text) > MAX_KEY_LENGTH or "\n" in text:
        raise InvalidSshKey("invalid_ssh_key", "Paste exactly one public key, on one line.")
    parts = text.split(None, 2)
    if len(parts) < 2:
        raise InvalidSshKey(
            "invalid_ssh_key",
            "Not an OpenSSH public key: expected 'TYPE BASE64 [comment]', "
            "such as the contents of ~/.ssh/id_ed25519.pub.",
        )
    key_type, encoded = parts[0], parts[1]
    comment = parts[2].strip() if len(parts) == 3 else ""
    if key_type not in SUPPORTED_TYPES:
        raise InvalidSshKey(
            "unsupported_key_type",
            f"Key type '{key_type[:40]}' is not supported; use one of: "
            + ", ".join(SUPPORTED_TYPES)
            + ".",
        )
    try:
        blob = base64.b64decode(encoded, validate=True)
        key = load_ssh_public_key(f"{key_type} {encoded}".encode())
    except (binascii.Error, ValueError, UnsupportedAlgorithm) as error:
        raise InvalidSshKey(
            "invalid_ssh_key", "The key data is damaged or does not match its type."
        ) from error
    bits = _bits_of(key)
    if isinstance(key, rsa.RSAPublicKey) and bits < MIN_RSA_BITS:
        raise InvalidSshKey(
            "weak_key", f"RSA keys must have at least {MIN_RSA_BITS} bits; this one has {bits}."
        )
    normalized = f"{key_type} {encoded}" + (f" {comment}" if comment else "")
    return ParsedSshKey(key_type, bits, fingerprint_of(blob), comment, normalized)
