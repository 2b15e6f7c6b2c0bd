"""The Create Customer Account form, field by field in the order of the reference description."""

import functools
from decimal import Decimal

from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    DecimalField,
    SelectField,
    SelectMultipleField,
    StringField,
)
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    BillingSchedule,
    Product,
    RateGroup,
    Role,
    Status,
    Tax,
)
from portal.rules.locale import country_choices, currency_choices, timezone_choices
from portal.security import STAFF, products_of, rate_groups_of, taxes_of, visible_resellers
from portal.web import PortalForm, ServiceForm, WholeNumberField, coerce_id


def choices(pairs) -> list[SelectChoice]:
    """(value, label) pairs as WTForms choices."""
    return [SelectChoice(str(value), label) for value, label in pairs]


STATUS_CHOICES = choices([(Status.ACTIVE, "Active"), (Status.INACTIVE, "Inactive")])
SCHEDULE_CHOICES = choices([(BillingSchedule.DAILY, "Daily"), (BillingSchedule.MONTHLY, "Monthly")])
TYPE_CHOICES = choices([(AccountType.PREPAID, "Prepaid"), (AccountType.POSTPAID, "Postpaid")])
REQUIRED = InputRequired(message="This field is required.")


@functools.cache
def _long_list(source) -> tuple[list[SelectChoice], frozenset[str]]:
    """The choices of a fixed list (built once per process) and the set of their values."""
    pairs = source()
    return choices(pairs), frozenset(str(value) for value, _ in pairs)


def tax_choices(owner_id: int | None) -> list:
    """The owner's active taxes as checkbox choices, in the order they apply."""
    taxes = db.session.scalars(
        taxes_of(owner_id).where(Tax.status == Status.ACTIVE).order_by(Tax.priority, Tax.name)
    )
    return choices(
        (t.id, f"{t.name} ({plain_decimal(t.rate)}% + {plain_decimal(t.fixed_amount)})")
        for t in taxes
    )


class LongSelectField(SelectField):
    """A select over a long fixed list (countries, timezones, currencies), checked with a set."""

    def __init__(self, label, source, **kwargs):
        options, self.allowed = _long_list(source)
        super().__init__(label, choices=options, **kwargs)

    def pre_validate(self, form):
        """Same rule and message as SelectField, without building and scanning every choice."""
        if not self.process_errors and self.data not in self.allowed:
            raise ValidationError(self.gettext("Not a valid choice."))


class MultiCheckboxField(SelectMultipleField):
    """Several choices shown as checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class CustomerForm(ServiceForm):
    """Create (and edit) a customer; the rules themselves live in accounts.validation."""

    reseller_id = SelectField(
        "Reseller",
        default="",
        description="Who the account belongs to; its rate groups and taxes are offered below.",
    )
    account_number = StringField(
        "Account Number",
        validators=[REQUIRED],
        description="Also called user name, card number or ID: unique digits of the account.",
    )
    password = StringField(
        "Password",
        description="Give it to the customer to log into the portal. Shown once.",
    )
    pin = StringField("Pin", validators=[REQUIRED], description="Calling card PIN.")
    first_name = StringField("First Name")
    last_name = StringField("Last Name")
    company = StringField("Company")
    telephone = StringField("Telephone", description="Stored in international E.164 form.")
    country = LongSelectField("Country", country_choices, default="US")
    timezone = LongSelectField(
        "Timezone",
        timezone_choices,
        default="UTC",
        description="The portal and e-mails show this account's times in this zone.",
    )
    status = SelectField(
        "Status",
        choices=STATUS_CHOICES,
        default=Status.ACTIVE.value,
        description="An inactive account can neither log in nor make calls.",
    )
    max_channels = WholeNumberField(
        "Max Channels",
        default=0,
        validators=[REQUIRED],
        description="Maximum concurrent outbound calls. 0 = unlimited.",
    )
    number_translation = StringField(
        "Number Translation",
        description="Comma-separated match/replace rules applied in order, e.g. 011/2222,+/00.",
    )
    first_used = StringField(
        "First Used",
        render_kw={"readonly": True, "disabled": True},
        description="Set by the system at the first call.",
    )
    expiry_date = StringField(
        "Expiry Date",
        render_kw={"readonly": True, "disabled": True},
        description="No new calls after this date; follows Valid Days.",
    )
    valid_days = WholeNumberField(
        "Valid Days",
        default=3650,
        validators=[REQUIRED],
        description="Days the account stays valid; changing it moves the expiry date to today "
        "plus this many days.",
    )
    create_sip_device = BooleanField(
        "Create SIP Device",
        default=True,
        description="Creates a SIP device with the account: user name = account number, "
        "its own SIP password.",
    )
    rate_group_id = SelectField(
        "Rate Group", description="Without a rate group no calls are possible."
    )
    billing_schedule = SelectField(
        "Billing Schedule",
        choices=SCHEDULE_CHOICES,
        default=BillingSchedule.MONTHLY.value,
        description="How often invoices are generated: every day, or monthly on the billing day.",
    )
    billing_day = WholeNumberField(
        "Billing Day",
        validators=[Optional()],
        description="Day of the month (1-28) the invoice is generated.",
    )
    currency = LongSelectField(
        "Currency",
        currency_choices,
        default="USD",
        description="Every amount of this account (balance, rates, documents) is in this currency.",
    )
    account_type = SelectField(
        "Account Type",
        choices=TYPE_CHOICES,
        default=AccountType.PREPAID.value,
        description="Prepaid: pays in advance, a receipt for every charge. "
        "Postpaid: pays invoices generated on the billing day, up to its credit limit.",
    )
    credit_limit = DecimalField(
        "Credit Limit",
        default=0,
        places=None,
        validators=[Optional()],
        description="Postpaid only.",
    )
    tax_ids = MultiCheckboxField(
        "Tax", coerce=coerce_id, description="Taxes applied to this account's charges and calls."
    )
    product_id = SelectField(
        "Product",
        choices=[],
        validate_choice=False,
        description="Optional: subscribe the new customer to a product from today (local).",
    )
    low_balance_alert = DecimalField(
        "Low Balance Alert",
        default=0,
        places=None,
        validators=[Optional()],
        description="Notify when available funds fall to this amount.",
    )
    email_alerts = BooleanField(
        "Enable Email Alerts?",
        description="E-mail the address below when available funds fall to the low balance alert.",
    )
    email = StringField(
        "Email Address",
        description="Receives low credit notifications; can be used to log in.",
    )
    send_welcome = BooleanField(
        "Send a welcome e-mail",
        default=True,
        description="Account number and login link, to the e-mail address above.",
    )
    send_password = BooleanField(
        "Include the password in the welcome e-mail", description="Off: hand it over yourself."
    )

    def load_choices(self, actor, owner_id: int | None) -> None:
        """Offer the resellers (staff only) and the owner's active rate groups and taxes."""
        if actor.role in STAFF and "reseller_id" in self:
            resellers = db.session.scalars(
                visible_resellers(actor)
                .where(Account.status == Status.ACTIVE)
                .order_by(Account.company, Account.first_name)
            )
            self.reseller_id.choices = choices(
                [("", "Admins (no reseller)")]
                + [(r.id, f"{r.name} ({r.account_number})") for r in resellers]
            )
        elif "reseller_id" in self:
            del self.reseller_id  # a reseller's accounts are always its own
        groups = list(
            db.session.scalars(
                rate_groups_of(owner_id)
                .where(RateGroup.status == Status.ACTIVE)
                .order_by(RateGroup.name)
            )
        )
        self.rate_groups = groups
        self.rate_group_id.choices = choices(
            [("", "Choose a rate group…")] + [(g.id, f"{g.name} ({g.currency})") for g in groups]
        )
        self.tax_ids.choices = tax_choices(owner_id)
        if "product_id" in self:
            products = db.session.scalars(
                products_of(owner_id).where(Product.status == Status.ACTIVE).order_by(Product.name)
            )
            self.product_id.choices = choices(
                [("", "No product")]
                + [(p.id, f"{p.name} ({p.currency}, {p.period.label})") for p in products]
            )

    IGNORED = ("csrf_token", "first_used", "expiry_date")


class ResellerForm(CustomerForm):
    """Create (and edit) a reseller: the customer's fields without PIN and SIP device."""

    pin = None
    create_sip_device = None
    product_id = None
    password = StringField(
        "Password",
        description="Give it to the reseller to log into the portal. Shown once.",
    )


class MassCreateForm(CustomerForm):
    """Mass create: how many customers, and the fields they share (numbers, secrets generated)."""

    account_number = password = pin = None
    first_name = last_name = company = telephone = number_translation = None
    first_used = expiry_date = low_balance_alert = email_alerts = email = None
    send_welcome = send_password = product_id = None
    count = WholeNumberField(
        "Number of accounts",
        default=10,
        validators=[REQUIRED],
        description="1 to 10,000. Each gets a generated account number, password and PIN.",
    )
    IGNORED = ("csrf_token",)


class AccountImportForm(PortalForm):
    """A CSV file of customers (the create form's field names as columns)."""

    file = FileField("CSV file", validators=[FileRequired(message="Choose a CSV file.")])


class StaffForm(ServiceForm):
    """Create (and edit) an admin or a sub-admin."""

    account_number = CustomerForm.account_number
    password = StringField("Password", description="Shown once.")
    first_name = StringField("First Name")
    last_name = StringField("Last Name")
    email = StringField("Email Address", description="Can be used to log in.")
    telephone = StringField("Telephone", description="International format, e.g. +1 212 555 0100.")
    timezone = CustomerForm.timezone
    status = CustomerForm.status
    send_welcome = CustomerForm.send_welcome
    send_password = CustomerForm.send_password

    def load_choices(self, actor, owner_id: int | None) -> None:
        """Staff forms have no tenant-specific choices."""


FORMS = {
    Role.CUSTOMER: CustomerForm,
    Role.RESELLER: ResellerForm,
    Role.SUBADMIN: StaffForm,
    Role.ADMIN: StaffForm,
}


def plain_decimal(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (100.00000 -> 100)."""
    return Decimal(format(value.normalize(), "f"))


def edit_form_data(account) -> dict:
    """The form's initial values for an existing account (fields the form lacks are ignored)."""
    return {
        "account_number": account.account_number,
        "pin": account.pin,
        "first_name": account.first_name,
        "last_name": account.last_name,
        "company": account.company,
        "telephone": account.telephone,
        "country": account.country,
        "timezone": account.timezone,
        "status": account.status.value,
        "max_channels": account.max_channels,
        "number_translation": account.number_translation,
        "valid_days": account.valid_days,
        "rate_group_id": str(account.rate_group_id or ""),
        "billing_schedule": account.billing_schedule.value,
        "billing_day": account.billing_day,
        "currency": account.currency,
        "account_type": account.account_type.value,
        "credit_limit": plain_decimal(account.credit_limit),
        "tax_ids": [t.id for t in account.taxes],
        "low_balance_alert": plain_decimal(account.low_balance_alert),
        "email_alerts": account.email_alerts,
        "email": account.email,
    }
