"""The filters of the Invoices and Payments pages (GET forms: nothing is saved)."""

from wtforms import DateField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import Length, Optional, Regexp, ValidationError

from portal.web import PortalForm

STATUS_CHOICES = [
    SelectChoice("", "Any"),
    SelectChoice("unpaid", "Unpaid"),
    SelectChoice("partial", "Partly paid"),
    SelectChoice("paid", "Paid"),
    SelectChoice("overdue", "Overdue"),
]


class ReportFilterForm(PortalForm):
    """Dates, account, reseller and currency: what both reports filter by."""

    class Meta:
        csrf = False  # a GET form that changes nothing

    date_from = DateField("From", validators=[Optional()])
    date_to = DateField("To", validators=[Optional()])
    account = StringField("Account number", validators=[Optional(), Length(max=40)])
    reseller = StringField("Reseller number", validators=[Optional(), Length(max=40)])
    currency = StringField(
        "Currency",
        validators=[
            Optional(),
            Regexp(r"\A[A-Za-z]{3}\Z", message="Enter a three-letter currency code, e.g. EUR."),
        ],
        render_kw={"maxlength": 3, "autocapitalize": "characters"},
    )

    def validate_date_to(self, field) -> None:
        """The end of the range is not before its start."""
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("Must not be before the start date.")


class InvoiceFilterForm(ReportFilterForm):
    """The Invoices page's filters: the report's, and paid/partly paid/unpaid/overdue."""

    status = SelectField("Status", choices=STATUS_CHOICES, default="")
