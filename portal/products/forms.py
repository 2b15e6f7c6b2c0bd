"""Product, prefix import, subscribe and cancel forms."""

from flask_wtf.file import FileField, FileRequired
from wtforms import RadioField, SelectField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length

from portal.accounts.forms import STATUS_CHOICES, LongSelectField, choices
from portal.models import ProductPeriod
from portal.products.subscriptions import CancelMode
from portal.rules.locale import currency_choices
from portal.web import PortalForm, ServiceForm, WholeNumberField

REQUIRED = InputRequired(message="This field is required.")
PERIOD_CHOICES = choices((period.value, period.label) for period in ProductPeriod)


class ProductForm(ServiceForm):
    """Name, description, price, period, setup fee, free minutes and prefixes of a product."""

    name = StringField("Name", validators=[REQUIRED, Length(max=100)])
    description = TextAreaField("Description", validators=[Length(max=500)])
    currency = LongSelectField(
        "Currency",
        currency_choices,
        default="USD",
        description="Only accounts in this currency can subscribe to the product.",
    )
    price = StringField(
        "Price", default="0", validators=[REQUIRED], description="Charged once per period."
    )
    period = SelectField(
        "Period",
        choices=PERIOD_CHOICES,
        default=ProductPeriod.MONTHLY.value,
        description="Monthly: calendar months in the account's timezone, the first one "
        "pro-rated. Daily: local days. One-time: once.",
    )
    setup_fee = StringField(
        "Setup fee", default="0", validators=[REQUIRED], description="Charged once, at the start."
    )
    free_minutes = WholeNumberField(
        "Free minutes per period",
        default=0,
        description="Minutes of calls to the prefixes below included in each period (0: none).",
    )
    prefixes = TextAreaField(
        "Destination prefixes",
        description="The prefixes the free minutes cover, one per line (digits only).",
        render_kw={"rows": 5},
    )
    status = SelectField("Status", choices=STATUS_CHOICES, default="active")


class PrefixImportForm(PortalForm):
    """A CSV file of prefixes (header: prefix) that replaces the product's prefixes."""

    file = FileField("CSV file", validators=[FileRequired(message="Choose a CSV file.")])


class SubscribeForm(ServiceForm):
    """Subscribe an account to a product from a start date."""

    product_id = SelectField("Product", choices=[], validate_choice=False)
    start_date = StringField(
        "Start date",
        description="In the account's timezone (YYYY-MM-DD); empty: today.",
        render_kw={"type": "date"},
    )


class CancelForm(ServiceForm):
    """When the cancelled subscription ends."""

    mode = RadioField(
        "Cancel",
        choices=choices(
            [
                (CancelMode.PERIOD_END.value, "At the period's end (no credit)"),
                (CancelMode.NOW.value, "Now, with a credit of the unused days"),
            ]
        ),
        default=CancelMode.PERIOD_END.value,
        validate_choice=False,
    )
