"""Invoice profiles: who issues a document (the operator or a reseller), as documents show it."""

from dataclasses import dataclass

from flask import Response
from sqlalchemy import select

from portal import audit
from portal.extensions import db
from portal.models import Account, InvoiceProfile, Role
from portal.models.profile import LOGO_MAX_BYTES
from portal.rules.email_address import normalize_email
from portal.settings.service import get_settings, save_settings
from portal.transactions import ValidationFailed, transaction

OPERATOR = 0
# The operator's profile is the global configuration's company profile: one place to edit it.
SETTING_KEYS = {
    "company_name": "company_name",
    "address": "company_address",
    "tax_number": "company_tax_number",
    "email": "company_email",
}
LIMITS = {"company_name": 120, "address": 500, "tax_number": 50, "email": 254}
# Raster images only, known by their first bytes: an SVG can carry script, and the browser is
# told the type we found (with nosniff), never the one the upload claimed.
LOGO_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
LOGO_TYPE_ERROR = "The logo must be a PNG, JPEG or GIF image."
LOGO_SIZE_ERROR = f"The logo may be at most {LOGO_MAX_BYTES // 1024} kB."


@dataclass(frozen=True)
class IssuerProfile:
    """What a document shows of its issuer."""

    issuer_key: int
    company_name: str
    address: str
    tax_number: str
    email: str
    has_logo: bool


def issuer_key_of(account: Account) -> int:
    """The issuer an account is when it bills: a reseller itself, staff the operator (0)."""
    return account.id if account.role == Role.RESELLER else OPERATOR


def logo_type(content: bytes) -> str | None:
    """The image type the content's first bytes show, or None when it is no accepted image."""
    for signature, media_type in LOGO_SIGNATURES:
        if content.startswith(signature):
            return media_type
    return None


def _has_logo(issuer: int) -> bool:
    """Whether the issuer stored a logo (without loading it)."""
    found = db.session.scalar(
        select(InvoiceProfile.logo_type).where(InvoiceProfile.issuer_key == issuer)
    )
    return found is not None


def issuer_profile(issuer: int) -> IssuerProfile:
    """The profile of an issuer; a reseller without one shows its company or name, as before."""
    if issuer == OPERATOR:
        values = get_settings(SETTING_KEYS.values())
        text = {field: values[key] for field, key in SETTING_KEYS.items()}
        return IssuerProfile(issuer_key=OPERATOR, has_logo=_has_logo(OPERATOR), **text)
    row = db.session.get(InvoiceProfile, issuer)
    reseller = db.session.get(Account, issuer)
    fallback = (reseller.company or reseller.name) if reseller else ""
    if row is None:
        return IssuerProfile(issuer, fallback, "", "", "", False)
    return IssuerProfile(
        issuer_key=issuer,
        company_name=row.company_name or fallback,
        address=row.address,
        tax_number=row.tax_number,
        email=row.email,
        has_logo=row.logo_type is not None,
    )


def profile_form_data(issuer: int) -> dict:
    """The invoice profile form's initial values (what is stored, no fallback)."""
    if issuer == OPERATOR:
        values = get_settings(SETTING_KEYS.values())
        return {field: values[key] for field, key in SETTING_KEYS.items()}
    row = db.session.get(InvoiceProfile, issuer)
    return {field: getattr(row, field) if row else "" for field in SETTING_KEYS}


def logo_of(issuer: int) -> tuple[bytes, str] | None:
    """(content, media type) of the issuer's logo, or None."""
    row = db.session.get(InvoiceProfile, issuer)
    if row is None or row.logo_type is None or row.logo is None:
        return None
    return row.logo, row.logo_type


def logo_response(content: bytes, media_type: str) -> Response:
    """A logo as its own answer: the type found in its bytes, shown inline, never sniffed."""
    response = Response(content, mimetype=media_type)
    response.headers["Content-Disposition"] = "inline"
    return response


def _clean(data: dict, logo: bytes | None) -> tuple[dict, str | None]:
    """The text values to store and the logo's type, or ValidationFailed per field."""
    errors: dict[str, str] = {}
    clean: dict = {}
    for field, limit in LIMITS.items():
        value = str(data.get(field) or "").strip()
        if len(value) > limit:
            errors[field] = f"At most {limit} characters."
        clean[field] = value
    if "email" not in errors:
        email, error = normalize_email(clean["email"])
        if error:
            errors["email"] = error
        clean["email"] = email or ""
    media_type = None
    if logo:
        if len(logo) > LOGO_MAX_BYTES:
            errors["logo"] = LOGO_SIZE_ERROR
        else:
            media_type = logo_type(logo)
            if media_type is None:
                errors["logo"] = LOGO_TYPE_ERROR
    if errors:
        raise ValidationFailed(errors)
    return clean, media_type


def save_invoice_profile(
    actor: Account, data: dict, logo: bytes | None = None, remove_logo: bool = False
) -> IssuerProfile:
    """Store the actor's own invoice profile (a reseller's, or an admin's: the operator's)."""
    clean, media_type = _clean(data, logo)
    issuer = issuer_key_of(actor)
    row = db.session.get(InvoiceProfile, issuer)
    logo_change = "replaced" if media_type else ("removed" if remove_logo else None)
    if issuer == OPERATOR:
        # One commit (save_settings') stores the logo row and the settings together.
        if logo_change:
            row = row or InvoiceProfile(issuer_key=OPERATOR, reseller_id=None)
            _set_logo(row, logo if media_type else None, media_type)
            db.session.add(row)
            audit.record(
                actor,
                "update",
                "invoice_profile",
                OPERATOR,
                label="Operator",
                changes={"logo": [None, logo_change]},
            )
        save_settings({key: clean[field] for field, key in SETTING_KEYS.items()}, actor)
        return issuer_profile(OPERATOR)
    with transaction():
        if row is None:
            row = InvoiceProfile(issuer_key=issuer, reseller_id=actor.id)
            db.session.add(row)
        before = {field: getattr(row, field) or "" for field in LIMITS}
        for field, value in clean.items():
            setattr(row, field, value)
        changes = audit.diff(before, clean)
        if logo_change:
            _set_logo(row, logo if media_type else None, media_type)
            changes["logo"] = [None, logo_change]
        if changes:
            audit.record(
                actor,
                "update",
                "invoice_profile",
                issuer,
                label=actor.account_number,
                account=actor,
                changes=changes,
            )
    return issuer_profile(issuer)


def _set_logo(row: InvoiceProfile, content: bytes | None, media_type: str | None) -> None:
    """Replace (or with None, remove) the row's logo."""
    row.logo = content
    row.logo_type = media_type
