"""Keys, chunk ids and sealed blobs.

- The caller's master secret goes through scrypt (salt and cost in the repository config) to a
  key-encryption key, which unwraps (AES-256-GCM) the repository's random keys: a data key for
  AES-256-GCM and an id key for chunk ids. Changing the master secret re-wraps, never re-encrypts.
- A chunk id is BLAKE3 in keyed mode (a PRF) under the id key. The id key is per repository, so
  the same content in two repositories gets unrelated ids. Measured on the bench machine with
  256 KiB chunks: keyed BLAKE3 3.1 GB/s on one thread and 5.1 GB/s on two (it releases the GIL),
  HMAC-SHA256 (SHA-NI) 1.5 / 2.7 GB/s, keyed BLAKE2b 0.86 / 1.6 GB/s. HMAC-SHA256 stays
  readable for repositories whose config names it.
- Every blob is nonce(12) + AES-GCM ciphertext + tag(16). The associated data names what the
  blob is (chunk id + compression flag, index of pack X, snapshot Y), so a blob moved to another
  place or a flipped flag fails authentication.
"""

import hashlib
import hmac
import os
from dataclasses import dataclass

import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from snapshots.engine.exceptions import WrongKey

NONCE_BYTES = 12
TAG_BYTES = 16
OVERHEAD_BYTES = NONCE_BYTES + TAG_BYTES


class BlobAuthenticationError(Exception):
    """A blob's GCM tag does not match: damaged, moved or sealed with another key."""


@dataclass(frozen=True)
class KdfParameters:
    salt: bytes
    n: int = 2**15
    r: int = 8
    p: int = 1

    def derive(self, secret: bytes) -> bytes:
        return Scrypt(salt=self.salt, length=32, n=self.n, r=self.r, p=self.p).derive(secret)


class Keys:
    """A repository's unwrapped keys: seal/open blobs and compute chunk ids."""

    def __init__(self, data_key: bytes, id_key: bytes, id_algorithm: str = "blake3-keyed"):
        self._aead = AESGCM(data_key)
        self._id_key = id_key
        self.material = data_key + id_key
        if id_algorithm == "blake3-keyed":
            self.chunk_id = self._blake3_id
        elif id_algorithm == "hmac-sha256":
            self.chunk_id = self._hmac_id
        else:
            raise ValueError(f"unknown chunk id algorithm {id_algorithm!r}")

    @classmethod
    def generate(cls) -> "Keys":
        return cls(os.urandom(32), os.urandom(32))

    def _blake3_id(self, data: bytes | memoryview) -> bytes:
        return blake3.blake3(data, key=self._id_key).digest()

    def _hmac_id(self, data: bytes | memoryview) -> bytes:
        return hmac.digest(self._id_key, data, hashlib.sha256)

    def seal(self, plaintext: bytes, associated_data: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated_data)

    def open(self, blob: bytes | memoryview, associated_data: bytes) -> bytes:
        if len(blob) < OVERHEAD_BYTES:
            raise BlobAuthenticationError("blob shorter than its nonce and tag")
        try:
            # Slices of a memoryview: no copy of the blob (cryptography takes any buffer).
            view = memoryview(blob)
            return self._aead.decrypt(view[:NONCE_BYTES], view[NONCE_BYTES:], associated_data)
        except InvalidTag:
            raise BlobAuthenticationError("authentication tag mismatch") from None


def wrap_keys(keys: Keys, secret: bytes, kdf: KdfParameters) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(kdf.derive(secret)).encrypt(nonce, keys.material, b"dumont-keys-v1")


def unwrap_keys(
    wrapped: bytes, secret: bytes, kdf: KdfParameters, id_algorithm: str = "blake3-keyed"
) -> Keys:
    """Raise WrongKey when the secret does not open the wrapped keys."""
    try:
        material = AESGCM(kdf.derive(secret)).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], b"dumont-keys-v1"
        )
    except InvalidTag:
        raise WrongKey("wrong master secret: it does not unlock this repository") from None
    return Keys(material[:32], material[32:], id_algorithm)
