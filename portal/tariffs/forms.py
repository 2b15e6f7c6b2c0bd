"""Rate group form."""

from flask_wtf import FlaskForm
from wtforms import SelectField, StringField
from wtforms.validators import InputRequired, Length

from portal.accounts.forms import STATUS_CHOICES


class RateGroupForm(FlaskForm):
    """Name and status of a rate group."""

    name = StringField(
        "Name",
        validators=[InputRequired(message="This field is required."), Length(max=100)],
    )
    status = SelectField("Status", choices=STATUS_CHOICES, default="active")
