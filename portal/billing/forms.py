"""Payment and charge forms."""

from wtforms import StringField
from wtforms.validators import InputRequired, Length

from portal.web import ServiceForm


class MoneyForm(ServiceForm):
    """An amount and what it is for (a payment/refill or a one-off charge)."""

    amount = StringField(
        "Amount",
        validators=[InputRequired(message="Enter an amount.")],
        render_kw={"inputmode": "decimal"},
    )
    description = StringField("Description", validators=[Length(max=200)])
