"""E-mail addresses: checked and normalised the same wherever an account stores one."""

from email_validator import EmailNotValidError, validate_email

MAX_LENGTH = 254


def normalize_email(raw: str | None) -> tuple[str | None, str | None]:
    """(lowercase address or None when blank, None) or (None, why it is not an address)."""
    raw = (raw or "").strip()
    if not raw:
        return None, None
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as error:
        return None, str(error)
    if len(result.normalized) > MAX_LENGTH:
        return None, "The e-mail address is too long."
    # Lowercase as a whole: logins match e-mails case-insensitively (auth.service).
    return result.normalized.lower(), None
