"""The forms of blocked prefixes and IP trunks."""

from wtforms import StringField
from wtforms.validators import InputRequired, Length

from portal.web import ServiceForm

REQUIRED = InputRequired(message="This field is required.")


class BlockedPrefixForm(ServiceForm):
    """A prefix whose numbers may not be called."""

    prefix = StringField(
        "Blocked prefix",
        id="blocked-prefix",  # the rate group page's add-a-rate form has its own "prefix"
        validators=[REQUIRED, Length(max=32)],
        description="Digits; every number starting with them is refused (DESTINATION_BLOCKED).",
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
    )


class IpTrunkForm(ServiceForm):
    """An address or CIDR range whose calls are the account's, with an optional tech prefix."""

    network = StringField(
        "IP address or range",
        id="trunk-network",
        validators=[REQUIRED, Length(max=49)],
        description="203.0.113.7, 203.0.113.0/24 or 2001:db8::/48.",
        render_kw={"autocomplete": "off", "spellcheck": "false"},
    )
    tech_prefix = StringField(
        "Tech prefix",
        id="trunk-tech-prefix",
        validators=[Length(max=16)],
        description="Optional digits its calls dial first; stripped before rating.",
        render_kw={"inputmode": "numeric", "autocomplete": "off"},
    )
