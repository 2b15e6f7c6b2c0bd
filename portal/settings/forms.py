"""Global configuration form, built from the setting definitions."""

from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange

from portal.accounts.forms import LongSelectField
from portal.settings.service import DEFINITIONS
from portal.web import PortalForm, WholeNumberField

REQUIRED = InputRequired(message="This field is required.")


def _field(definition):
    """The WTForms field of one setting definition."""
    if definition.kind == "int":
        return WholeNumberField(
            definition.label,
            description=definition.help,
            validators=[REQUIRED, NumberRange(definition.minimum, definition.maximum)],
        )
    if definition.kind == "choice":
        return LongSelectField(definition.label, definition.choices, description=definition.help)
    if definition.kind == "bool":
        return BooleanField(definition.label, description=definition.help)
    field_class = TextAreaField if definition.multiline else StringField
    return field_class(
        definition.label,
        description=definition.help,
        validators=[Length(max=definition.max_length)],
    )


class GlobalConfigurationForm(PortalForm):
    """One field per setting definition."""

    def values(self) -> dict:
        """The submitted settings, typed, keyed by setting."""
        values = {}
        for key, definition in DEFINITIONS.items():
            value = self[key].data
            if definition.kind in ("text", "email"):
                value = (value or "").strip()
            values[key] = value
        return values


for _definition in DEFINITIONS.values():
    setattr(GlobalConfigurationForm, _definition.key, _field(_definition))
