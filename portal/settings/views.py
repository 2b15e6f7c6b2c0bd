"""Global configuration page (admins only)."""

from flask import flash, render_template, request, url_for
from flask_login import current_user

from portal.htmx import redirect_to
from portal.models import Role
from portal.security import roles_required
from portal.settings import bp
from portal.settings.forms import GlobalConfigurationForm
from portal.settings.service import DEFINITIONS, SettingsInvalid, get_settings, save_settings


@bp.route("/", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def edit():
    """Show and save the global configuration, grouped."""
    form = GlobalConfigurationForm(data=None if request.method == "POST" else get_settings())
    if form.validate_on_submit():
        try:
            save_settings(form.values(), current_user)
        except SettingsInvalid as invalid:
            for key, message in invalid.errors.items():
                form[key].errors = [message]
        else:
            flash("Configuration saved.", "success")
            return redirect_to(url_for("settings.edit"))
    groups: dict[str, list] = {}
    for definition in DEFINITIONS.values():
        groups.setdefault(definition.group, []).append(form[definition.key])
    status = 422 if request.method == "POST" else 200
    return render_template("settings/edit.html", form=form, groups=groups), status
