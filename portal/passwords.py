"""Password hashing: salted one-way hashes only (werkzeug scrypt by default)."""

from flask import current_app
from werkzeug.security import check_password_hash, generate_password_hash


def hash_password(password: str) -> str:
    """Return a salted hash of `password` with the configured method."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def verify_password(password_hash: str, password: str) -> bool:
    """True if `password` matches `password_hash` (any method werkzeug knows)."""
    return check_password_hash(password_hash, password)
