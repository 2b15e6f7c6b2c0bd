"""The REST API's move: a customer, or a reseller with its subtree, to another owner."""

from flask import jsonify

from portal.accounts.moving import move_account, target_owner
from portal.api import schemas
from portal.api.accounts import account_json, account_or_404
from portal.api.caller import key_account as _actor
from portal.api.errors import ApiError
from portal.api.openapi import operation, parse_body
from portal.extensions import db

NO_SUCH_OWNER = "No such reseller among those you may move accounts to."


@operation(
    "/accounts/<int:account_id>/move",
    "POST",
    summary="Move an account (a reseller: with its subtree) under another owner, as the Move page.",
    tag="Accounts",
    body=schemas.AccountMove,
    responses={200: schemas.AccountOut},
    errors=(404,),
)
def move_account_api(account_id: int):
    """Move through the same checks as the Move page: one transaction, audited."""
    account = account_or_404(account_id)
    body = parse_body(schemas.AccountMove)
    try:
        owner = target_owner(_actor(), body.reseller_id)
    except LookupError:
        # The owner is another tenant's, or no reseller at all: the same answer for both.
        raise ApiError(422, "Invalid fields.", {"reseller_id": NO_SUCH_OWNER}) from None
    move_account(_actor(), account, owner, body.model_dump())
    db.session.refresh(account)
    return jsonify(account_json(account))
