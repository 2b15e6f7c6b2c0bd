"""The paged lists of one account (ledger, documents, calls) as a page or an htmx fragment."""

from portal.billing.queries import calls_page, documents_page, ledger_page
from portal.htmx import render_page_or_fragment
from portal.models import Account

# The lists of an account: (page function, fragment, title, id of the element it fills).
ACCOUNT_LISTS = {
    "ledger": (ledger_page, "money/_ledger.html", "Ledger", "ledger-list"),
    "documents": (
        documents_page,
        "money/_documents.html",
        "Receipts and invoices",
        "documents-list",
    ),
    "calls": (calls_page, "money/_calls.html", "Calls", "calls-list"),
}


def account_list(account: Account, kind: str, endpoint: str, url_args: dict, back_url: str):
    """One paged list of an account: the page, or for htmx the fragment that replaces it."""
    page_of, fragment, title, element = ACCOUNT_LISTS[kind]
    return render_page_or_fragment(
        "money/account_list.html",
        fragment,
        account=account,
        title=title,
        fragment=fragment,
        element=element,
        back_url=back_url,
        list_args=url_args,
        **{kind: page_of(account), f"{kind}_endpoint": endpoint},
    )
