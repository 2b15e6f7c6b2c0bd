"""Tax form."""

from wtforms import SelectField, StringField
from wtforms.validators import InputRequired, Length

from portal.accounts.forms import STATUS_CHOICES
from portal.web import ServiceForm, WholeNumberField

REQUIRED = InputRequired(message="This field is required.")


class TaxForm(ServiceForm):
    """Name, rate %, fixed amount, priority and status of a tax."""

    name = StringField("Name", validators=[REQUIRED, Length(max=100)])
    rate = StringField("Rate (%)", default="0", validators=[REQUIRED])
    fixed_amount = StringField("Fixed amount", default="0", validators=[REQUIRED])
    priority = WholeNumberField(
        "Priority",
        default=1,
        validators=[REQUIRED],
        description="Tax lines are listed and applied in ascending priority.",
    )
    status = SelectField("Status", choices=STATUS_CHOICES, default="active")
