"""Own forms: the profile (customers, resellers), password, and a reseller's invoice profile."""

from flask_wtf.file import FileField
from wtforms import BooleanField, PasswordField, StringField, TextAreaField
from wtforms.validators import EqualTo, InputRequired

from portal.accounts.forms import plain_decimal
from portal.models import Account
from portal.web import PortalForm, ServiceForm


class ProfileForm(ServiceForm):
    """Names, telephone and the low balance alert; the rules live in me.service."""

    first_name = StringField("First Name", render_kw={"autocomplete": "given-name"})
    last_name = StringField("Last Name", render_kw={"autocomplete": "family-name"})
    telephone = StringField(
        "Telephone",
        description="Stored in international E.164 form, e.g. +12125550100.",
        render_kw={"autocomplete": "tel", "type": "tel"},
    )
    email = StringField(
        "Email Address",
        description="Receives low balance alerts; you can also log in with it.",
        render_kw={"autocomplete": "email", "type": "email"},
    )
    # Text, not DecimalField: parse_amount gives the same messages as everywhere else.
    low_balance_alert = StringField(
        "Low Balance Alert",
        description="Alert when available funds fall to this amount.",
        render_kw={"inputmode": "decimal"},
    )
    email_alerts = BooleanField("Enable Email Alerts?")


class ResellerProfileForm(ProfileForm):
    """A reseller's profile: the customer's fields and its company."""

    company = StringField("Company", render_kw={"autocomplete": "organization"})


def profile_form_data(account: Account) -> dict:
    """The profile form's initial values."""
    return {
        "first_name": account.first_name,
        "last_name": account.last_name,
        "company": account.company,
        "telephone": account.telephone or "",
        "email": account.email or "",
        "low_balance_alert": plain_decimal(account.low_balance_alert),
        "email_alerts": account.email_alerts,
    }


class PasswordForm(PortalForm):
    """Current password, new password and the new one repeated."""

    old_password = PasswordField(
        "Current password",
        validators=[InputRequired(message="Enter your current password.")],
        render_kw={"autocomplete": "current-password"},
    )
    new_password = PasswordField(
        "New password",
        validators=[InputRequired(message="Enter a new password.")],
        render_kw={"autocomplete": "new-password"},
    )
    repeat_password = PasswordField(
        "Repeat new password",
        validators=[
            InputRequired(message="Repeat the new password."),
            EqualTo("new_password", message="The passwords do not match."),
        ],
        render_kw={"autocomplete": "new-password"},
    )


class InvoiceProfileForm(ServiceForm):
    """Who the issuer's receipts and invoices name; the rules live in billing.profile."""

    IGNORED = ("csrf_token", "logo", "remove_logo")

    company_name = StringField("Company name", render_kw={"autocomplete": "organization"})
    address = TextAreaField("Address", render_kw={"rows": 3})
    tax_number = StringField("Tax number", description="VAT / GST registration number.")
    email = StringField(
        "E-mail",
        description="Where customers reply to invoices.",
        render_kw={"type": "email"},
    )
    logo = FileField(
        "Logo",
        description="Optional: a PNG, JPEG or GIF image of at most 256 kB.",
        render_kw={"accept": "image/png,image/jpeg,image/gif"},
    )
    remove_logo = BooleanField("Remove the logo")
