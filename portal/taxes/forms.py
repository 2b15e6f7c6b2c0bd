"""Tax form."""

from flask_wtf import FlaskForm
from wtforms import DecimalField, IntegerField, SelectField, StringField
from wtforms.validators import InputRequired, Length, NumberRange

from portal.accounts.forms import STATUS_CHOICES

REQUIRED = InputRequired(message="This field is required.")


class TaxForm(FlaskForm):
    """Name, rate %, fixed amount, priority and status of a tax."""

    name = StringField("Name", validators=[REQUIRED, Length(max=100)])
    rate = DecimalField(
        "Rate (%)", places=None, default=0, validators=[REQUIRED, NumberRange(0, 100)]
    )
    fixed_amount = DecimalField(
        "Fixed amount",
        places=None,
        default=0,
        validators=[REQUIRED, NumberRange(0, 1000000)],
    )
    priority = IntegerField(
        "Priority",
        default=1,
        validators=[REQUIRED, NumberRange(1, 100)],
        description="Taxes apply in ascending priority.",
    )
    status = SelectField("Status", choices=STATUS_CHOICES, default="active")
