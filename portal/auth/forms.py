"""Login form."""

from wtforms import BooleanField, PasswordField, StringField
from wtforms.validators import InputRequired, Length

from portal.web import PortalForm


class LoginForm(PortalForm):
    """Account number or e-mail, plus password."""

    identifier = StringField(
        "Account number or e-mail",
        validators=[
            InputRequired(message="Enter your account number or e-mail."),
            Length(max=254),
        ],
        render_kw={"autocomplete": "username", "autofocus": True},
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired(message="Enter your password."), Length(max=128)],
        render_kw={"autocomplete": "current-password"},
    )
    remember = BooleanField("Keep me logged in")
