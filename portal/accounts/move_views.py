"""The Move page: a customer, or a reseller with its subtree, to another owner."""

from flask import abort, flash, render_template, request, url_for
from flask_login import current_user
from wtforms import SelectField

from portal.accounts import bp
from portal.accounts.forms import MultiCheckboxField, choices, tax_choices
from portal.accounts.moving import MOVABLE, move_account, move_targets, target_owner
from portal.extensions import db
from portal.htmx import redirect_to, render_fragment
from portal.models import Account, RateGroup, Status
from portal.security import (
    MANAGERS,
    STAFF,
    get_account_or_404,
    rate_groups_of,
    roles_required,
)
from portal.transactions import ValidationFailed
from portal.web import ServiceForm, apply_errors, coerce_id


class MoveForm(ServiceForm):
    """Where the account goes, and its rate group and taxes there."""

    # The choices are offered, not enforced here: the service checks each and says why on its
    # field (a target the mover cannot see is a 404, see move()).
    reseller_id = SelectField(
        "New owner",
        validate_choice=False,
        description="A reseller takes its whole subtree with it (sub-resellers and customers).",
    )
    rate_group_id = SelectField(
        "Rate Group",
        validate_choice=False,
        description="One of the new owner's rate groups, in the account's currency.",
    )
    tax_ids = MultiCheckboxField(
        "Tax",
        coerce=coerce_id,
        validate_choice=False,
        description="The new owner's taxes; the old owner's are removed.",
    )

    def load_choices(self, actor: Account, account: Account, owner: Account | None) -> None:
        """Offer the owners `actor` may move to, and `owner`'s rate groups and taxes."""
        self.reseller_id.choices = choices(
            ("" if owner_id is None else owner_id, label)
            for owner_id, label in move_targets(actor, account)
        )
        owner_id = owner.id if owner else None
        groups = db.session.scalars(
            rate_groups_of(owner_id)
            .where(RateGroup.status == Status.ACTIVE, RateGroup.currency == account.currency)
            .order_by(RateGroup.name)
        )
        self.rate_group_id.choices = choices(
            [("", "Choose a rate group…")] + [(g.id, f"{g.name} ({g.currency})") for g in groups]
        )
        self.tax_ids.choices = tax_choices(owner_id)


def _movable_or_404(account_id: int) -> Account:
    """A customer or reseller the caller may manage, never the caller itself."""
    account = get_account_or_404(current_user, account_id)
    if account.role not in MOVABLE or account.id == current_user.id:
        abort(404)
    return account


def _default_owner() -> Account | None:
    """The owner whose choices are shown when none valid was posted: the caller's own tenant."""
    return None if current_user.role in STAFF else current_user


def _owner_or_404(raw) -> Account | None:
    """The posted owner (None: the admins); 404 when the caller may not see it."""
    try:
        return target_owner(current_user, raw)
    except LookupError:
        abort(404)  # a reseller the mover cannot see is simply not found
    except ValidationFailed:
        return _default_owner()


@bp.route("/<int:account_id>/move", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def move(account_id: int):
    """Move an account (a reseller with its whole subtree) to another owner."""
    account = _movable_or_404(account_id)
    form = MoveForm()
    if request.method == "GET":
        form.load_choices(current_user, account, _default_owner())
        first = form.reseller_id.choices[0].value if form.reseller_id.choices else ""
        form.reseller_id.data = first
        form.load_choices(current_user, account, _owner_or_404(first))
        return _render(form, account, 200)
    raw = request.form.get("reseller_id")
    owner = _owner_or_404(raw)
    form.load_choices(current_user, account, owner)
    if form.validate():
        try:
            owner = target_owner(current_user, raw)
            move_account(current_user, account, owner, form.service_data())
        except ValidationFailed as failed:
            apply_errors(form, failed.errors)
        else:
            flash(f"Account {account.account_number} moved.", "success")
            return redirect_to(url_for("accounts.show", account_id=account.id))
    return _render(form, account, 422)


@bp.route("/<int:account_id>/move/choices")
@roles_required(*MANAGERS)
def move_choices(account_id: int):
    """The chosen owner's rate groups and taxes (htmx, swapped out of band)."""
    account = _movable_or_404(account_id)
    form = MoveForm(formdata=None, meta={"csrf": False})
    form.load_choices(current_user, account, _owner_or_404(request.args.get("reseller_id")))
    return render_fragment("accounts/_owner_choices.html", form=form)


def _render(form: MoveForm, account: Account, status: int):
    """The Move page."""
    return render_template("accounts/move.html", form=form, account=account), status
