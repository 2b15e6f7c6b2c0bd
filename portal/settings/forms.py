"""Global configuration form, built from the setting definitions."""

from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import InputRequired, NumberRange

from portal.settings.service import DEFINITIONS


class GlobalConfigurationForm(FlaskForm):
    """One integer field per setting definition, with its range."""


for _definition in DEFINITIONS.values():
    setattr(
        GlobalConfigurationForm,
        _definition.key,
        IntegerField(
            _definition.label,
            description=_definition.help,
            validators=[
                InputRequired(message="This field is required."),
                NumberRange(_definition.minimum, _definition.maximum),
            ],
        ),
    )
