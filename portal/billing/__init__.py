"""Money on the account page (payments, charges, ledger) and receipts and invoices."""

from flask import Blueprint

bp = Blueprint("billing", __name__)

from portal.billing import views  # noqa: F401
