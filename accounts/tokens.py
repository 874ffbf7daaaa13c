"""API token secrets: `dmt_` + 256 random bits; the database keeps only their SHA-256."""

import hashlib
import secrets

TOKEN_PREFIX = "dmt_"
DISPLAY_PREFIX_LENGTH = len(TOKEN_PREFIX) + 6


def new_token_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(plaintext: str) -> str:
    # A fast hash is right here: the secret has 256 bits of entropy, so it cannot be guessed
    # offline, and lookups by hash stay one indexed query per request.
    return hashlib.sha256(plaintext.encode()).hexdigest()


def display_prefix(plaintext: str) -> str:
    return plaintext[:DISPLAY_PREFIX_LENGTH]
