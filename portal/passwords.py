"""Password hashing: salted one-way hashes only (werkzeug scrypt by default)."""

import math

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash

from portal.rules.identifiers import PASSWORD_ALPHABET

# Secrets the portal draws itself (bulk-created accounts) get a fast salted hash instead of the
# configured slow one. A slow hash protects guessable, person-chosen passwords; a uniformly
# random secret of >= 80 bits already takes ~2**79 guesses on average, so the ~100 ms of scrypt
# only multiplies an infeasible number by a constant, while 10,000 accounts would wait 17 min.
# The hash is still salted, and check_password_hash verifies it like any other; the user's own
# later password change goes through hash_password (the configured method) again.
FAST_HASH_METHOD = "pbkdf2:sha256:1000"
MIN_GENERATED_BITS = 80
GENERATED_PASSWORD_LENGTH = math.ceil(MIN_GENERATED_BITS / math.log2(len(PASSWORD_ALPHABET)))


def hash_password(password: str) -> str:
    """Return a salted hash of `password` with the configured method."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def hash_generated_secret(secret: str) -> str:
    """A salted fast hash, only for a password generate_password drew (>= 80 random bits)."""
    if len(secret) < GENERATED_PASSWORD_LENGTH:
        raise ValueError("too short to be a generated secret of 80 bits")
    return generate_password_hash(secret, method=FAST_HASH_METHOD)


def verify_password(password_hash: str, password: str) -> bool:
    """True if `password` matches `password_hash` (any method werkzeug knows)."""
    return check_password_hash(password_hash, password)
