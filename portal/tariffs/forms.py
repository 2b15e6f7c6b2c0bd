"""Rate group, rate and rate import forms."""

from flask_wtf.file import FileField, FileRequired
from wtforms import (
    BooleanField,
    RadioField,
    SelectField,
    StringField,
    ValidationError,
)
from wtforms.validators import InputRequired, Length

from portal.accounts.forms import STATUS_CHOICES, LongSelectField, choices
from portal.rules.locale import currency_choices
from portal.web import PortalForm, ServiceForm, WholeNumberField

REQUIRED = InputRequired(message="This field is required.")


class RateGroupForm(ServiceForm):
    """Name, currency and status of a rate group."""

    name = StringField("Name", validators=[REQUIRED, Length(max=100)])
    currency = LongSelectField(
        "Currency",
        currency_choices,
        default="USD",
        description="Only accounts in this currency can use the rate group.",
    )
    status = SelectField("Status", choices=STATUS_CHOICES, default="active")


class RateForm(ServiceForm):
    """One rate: prefix, destination, costs and billing increments."""

    prefix = StringField(
        "Prefix",
        validators=[Length(max=32)],
        description="Digits the dialled number starts with; empty matches any number.",
    )
    destination = StringField("Destination", validators=[Length(max=100)])
    connect_cost = StringField("Connect cost", default="0", validators=[REQUIRED])
    cost_per_minute = StringField("Cost per minute", default="0", validators=[REQUIRED])
    initial_increment = WholeNumberField(
        "Initial increment (s)",
        default=60,
        validators=[REQUIRED],
        description="Seconds billed at the start of the call.",
    )
    increment = WholeNumberField(
        "Increment (s)",
        default=60,
        validators=[REQUIRED],
        description="Seconds billed for each further block.",
    )


class RateImportForm(PortalForm):
    """A CSV file of rates and what to do with the existing ones."""

    file = FileField("CSV file", validators=[FileRequired(message="Choose a CSV file.")])
    mode = RadioField(
        "Existing rates",
        choices=choices(
            [
                ("replace", "Replace all rates of this group"),
                ("merge", "Add, and overwrite same prefixes"),
            ]
        ),
        default="merge",
    )
    # Replacing deletes every rate of the group: asked on the server, so it holds without JS.
    confirm_replace = BooleanField(
        "Yes, delete every existing rate of this group first",
        description="Needed only for “Replace all rates”.",
    )

    def validate_confirm_replace(self, field) -> None:
        """Replacing all rates needs the box ticked."""
        if self.mode.data == "replace" and not field.data:
            raise ValidationError(
                "Tick this box to replace all rates, or choose “Add, and overwrite same prefixes”."
            )
