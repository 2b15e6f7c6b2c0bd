"""The REST API of accounts, rate groups, taxes and money: the forms' service code, as JSON."""

from dataclasses import asdict

from flask import Response, jsonify, url_for
from sqlalchemy.orm import selectinload

from portal import mail
from portal.accounts.bulk import check_mass_create, mass_create, runs_inline
from portal.accounts.defaults import with_defaults
from portal.accounts.forms import edit_form_data
from portal.accounts.queries import search_accounts
from portal.accounts.service import create_account, set_status, soft_delete, update_account
from portal.api import schemas
from portal.api.caller import key_account as _actor
from portal.api.caller import utc as _utc
from portal.api.errors import ApiError
from portal.api.idempotency import run_once
from portal.api.jobs import job_json
from portal.api.openapi import document, operation, parse_body, parse_query
from portal.background import records
from portal.billing.service import add_charge, add_payment
from portal.extensions import db
from portal.models import Account, RateGroup, Role, Status, Tax
from portal.rules.currency import plain_amount
from portal.rules.identifiers import NumberSpaceExhausted
from portal.security import CREATABLE, STAFF, visible_accounts, visible_rate_groups, visible_taxes

API_ROLES = (Role.CUSTOMER, Role.RESELLER)
CUSTOMER_ONLY = ("pin", "create_sip_device", "product_id")


def account_json(account: Account) -> dict:
    """An account as schemas.AccountOut."""
    currency = account.currency
    return schemas.AccountOut(
        id=account.id,
        account_number=account.account_number,
        role=account.role.value,
        status=account.status,
        reseller_id=account.reseller_id,
        first_name=account.first_name,
        last_name=account.last_name,
        company=account.company,
        email=account.email,
        telephone=account.telephone,
        country=account.country,
        timezone=account.timezone,
        max_channels=account.max_channels,
        number_translation=account.number_translation,
        valid_days=account.valid_days,
        expiry_date=_utc(account.expiry_date),
        first_used=_utc(account.first_used),
        rate_group_id=account.rate_group_id,
        billing_schedule=account.billing_schedule,
        billing_day=account.billing_day,
        currency=currency,
        account_type=account.account_type,
        credit_limit=plain_amount(account.credit_limit, currency),
        balance=plain_amount(account.balance, currency),
        low_balance_alert=plain_amount(account.low_balance_alert, currency),
        email_alerts=account.email_alerts,
        tax_ids=sorted(tax.id for tax in account.taxes),
        sip_devices=[
            schemas.SipDeviceOut(username=d.username, status=d.status) for d in account.sip_devices
        ],
        created_at=_utc(account.created_at),
    ).model_dump(mode="json")


def account_or_404(account_id: int) -> Account:
    """A customer or reseller the key's owner may manage, or a JSON 404."""
    account = db.session.scalar(
        visible_accounts(_actor()).where(Account.id == account_id, Account.role.in_(API_ROLES))
    )
    if account is None:
        raise ApiError(404, "No such account.")
    return account


@operation(
    "/openapi.json",
    "GET",
    summary="This API's OpenAPI 3.1 document (no key needed).",
    tag="Documentation",
    responses={200: None},
)
def openapi_document():
    """The OpenAPI document, generated from the schemas that validate requests."""
    return jsonify(document())


@operation(
    "/accounts",
    "POST",
    summary="Create a customer or reseller, as the Create Customer Account form does.",
    tag="Accounts",
    body=schemas.AccountCreate,
    responses={201: schemas.AccountCreated},
    idempotent=True,
)
def create_account_api():
    """Create an account; generated (or given) secrets are in this answer only."""
    body = parse_body(schemas.AccountCreate)
    owner = _actor()
    role = Role(body.role)
    if role not in CREATABLE[owner.role]:
        raise ApiError(403, f"This key may not create {role.value} accounts.")
    data = body.model_dump(mode="json", exclude_none=True)
    if role != Role.CUSTOMER:
        wrong = [name for name in CUSTOMER_ONLY if name in data]
        if wrong:
            raise ApiError(422, "Invalid fields.", dict.fromkeys(wrong, "Customers only."))
    if owner.role not in STAFF and body.reseller_id is not None:
        raise ApiError(422, "Invalid fields.", {"reseller_id": "Staff keys only."})
    owner_id = body.reseller_id if owner.role in STAFF else owner.id
    try:
        data = with_defaults(role, data, owner_id)
    except NumberSpaceExhausted as exhausted:
        raise ApiError(422, "Invalid fields.", {"account_number": str(exhausted)}) from exhausted

    def answer(created, stored: bool) -> dict:
        secrets = None
        if not stored:
            secrets = {
                "password": created.password,
                "pin": created.account.pin if role == Role.CUSTOMER else None,
                "sip_password": created.sip_password,
            }
        return {"account": account_json(created.account), "secrets": secrets}

    response, created = run_once(lambda: create_account(owner, role, data), answer, 201)
    account_id = response.get_json()["account"]["id"]
    response.headers["Location"] = url_for("api.get_account", account_id=account_id)
    if created is not None:
        mail.deliver_now(created.mail)
    return response


@operation(
    "/accounts/mass-create",
    "POST",
    summary="Mass create: up to 10,000 customers alike in one transaction, secrets returned once "
    "(over 500: a job, answered 202; poll it, then take its credentials once).",
    tag="Accounts",
    body=schemas.MassCreate,
    responses={201: schemas.MassCreated, 202: schemas.JobAccepted},
    idempotent=True,
)
def mass_create_api():
    """The Mass create page's operation (customers of the key's tenant)."""
    body = parse_body(schemas.MassCreate)
    owner = _actor()
    if Role.CUSTOMER not in CREATABLE[owner.role]:
        raise ApiError(403, "This key may not create customer accounts.")
    if owner.role not in STAFF and body.reseller_id is not None:
        raise ApiError(422, "Invalid fields.", {"reseller_id": "Staff keys only."})

    def answer(result, stored: bool) -> dict:
        credentials = None if stored else [asdict(c) for c in result.credentials]
        return {"account_ids": result.account_ids, "credentials": credentials}

    data = body.model_dump(mode="json", exclude_none=True)
    if runs_inline(body.count, 0):
        response, _result = run_once(lambda: mass_create(owner, data), answer, 201)
        return response

    def start_job():
        check_mass_create(owner, data)  # refused at once, like the small one
        label = f"Mass create of {body.count:,} customers"
        return records.create(owner, "mass_create", label, params=data, total=body.count)

    response, job = run_once(start_job, lambda job, stored: {"job": job_json(job, owner)}, 202)
    if job is not None:  # committed with its Idempotency-Key; a replay names the same job
        records.enqueue(job)
    job_id = job.id if job is not None else response.get_json()["job"]["id"]
    response.headers["Location"] = url_for("api.get_job", job_id=job_id)
    return response


@operation(
    "/accounts",
    "GET",
    summary="List accounts newest first: filters, search and cursor pagination.",
    tag="Accounts",
    query=schemas.AccountQuery,
    responses={200: schemas.AccountPage},
)
def list_accounts():
    """One page of the accounts the key's owner may see."""
    params = parse_query(schemas.AccountQuery)
    query = visible_accounts(_actor()).where(Account.role.in_(API_ROLES))
    if params.role:
        query = query.where(Account.role == Role(params.role))
    if params.status:
        query = query.where(Account.status == params.status)
    if params.type:
        query = query.where(Account.account_type == params.type)
    if params.reseller_id is not None:
        query = query.where(
            Account.reseller_id.is_(None)
            if params.reseller_id == 0
            else Account.reseller_id == params.reseller_id
        )
    before = int(params.cursor) if params.cursor else None
    # Taxes and SIP devices of the whole page in two queries, not two per account.
    query = query.options(selectinload(Account.taxes), selectinload(Account.sip_devices))
    page = search_accounts(query, params.q or "", before, params.limit)
    body = {
        "items": [account_json(account) for account in page.items],
        "next_cursor": str(page.next_before) if page.next_before else None,
    }
    return jsonify(body)


@operation(
    "/accounts/<int:account_id>",
    "GET",
    summary="One account.",
    tag="Accounts",
    responses={200: schemas.AccountOut},
    errors=(404,),
)
def get_account(account_id: int):
    """An account the key's owner may see."""
    return jsonify(account_json(account_or_404(account_id)))


@operation(
    "/accounts/<int:account_id>",
    "PATCH",
    summary="Change an account; omitted fields keep their values.",
    tag="Accounts",
    body=schemas.AccountUpdate,
    responses={200: schemas.AccountOut},
    errors=(404,),
)
def update_account_api(account_id: int):
    """Update through the same rules as the edit form."""
    account = account_or_404(account_id)
    changes = parse_body(schemas.AccountUpdate).model_dump(mode="json", exclude_none=True)
    if account.role != Role.CUSTOMER and "pin" in changes:
        raise ApiError(422, "Invalid fields.", {"pin": "Customers only."})
    data = {**edit_form_data(account), **changes}
    update_account(_actor(), account, data)
    return jsonify(account_json(account))


def _set_status(account_id: int, status: Status):
    """Activate or deactivate an account; its SIP devices follow."""
    account = account_or_404(account_id)
    set_status(_actor(), account, status)
    return jsonify(account_json(account))


@operation(
    "/accounts/<int:account_id>/deactivate",
    "POST",
    summary="Deactivate an account: no more calls or logins.",
    tag="Accounts",
    responses={200: schemas.AccountOut},
    errors=(404,),
)
def deactivate_account(account_id: int):
    """Deactivate (again: no change)."""
    return _set_status(account_id, Status.INACTIVE)


@operation(
    "/accounts/<int:account_id>/activate",
    "POST",
    summary="Activate an account again.",
    tag="Accounts",
    responses={200: schemas.AccountOut},
    errors=(404,),
)
def activate_account(account_id: int):
    """Activate (again: no change)."""
    return _set_status(account_id, Status.ACTIVE)


@operation(
    "/accounts/<int:account_id>",
    "DELETE",
    summary="Delete an account (softly: its number is never reused, its records stay).",
    tag="Accounts",
    responses={204: None},
    errors=(404,),
)
def delete_account(account_id: int):
    """Soft-delete; the account is then not found."""
    soft_delete(_actor(), account_or_404(account_id))
    return Response(status=204)


def _money(account_id: int, book):
    """Post a payment or charge once per Idempotency-Key."""
    account = account_or_404(account_id)
    body = parse_body(schemas.MoneyPost)
    currency = account.currency

    def answer(posted, stored: bool) -> dict:
        document = posted.document
        return schemas.PostedOut(
            account_id=account.id,
            entries=[
                schemas.EntryOut(
                    id=entry.id,
                    kind=entry.kind.value,
                    amount=plain_amount(entry.amount, currency),
                    description=entry.description,
                )
                for entry in posted.entries
            ],
            document=schemas.DocumentOut(
                id=document.id,
                kind=document.kind.value,
                number=document.display_number,
                total=plain_amount(document.total, currency),
            )
            if document
            else None,
            allocations=[
                schemas.AllocationOut(
                    invoice_id=allocation.document_id,
                    invoice=allocation.document.display_number,
                    amount=plain_amount(allocation.amount, currency),
                )
                for allocation in posted.allocations
            ],
            balance=plain_amount(account.balance, currency),
        ).model_dump(mode="json")

    response, posted = run_once(
        lambda: book(_actor(), account, body.amount, body.description), answer, 201
    )
    if posted is not None:
        mail.deliver_now(posted.mail)
    return response


@operation(
    "/accounts/<int:account_id>/payments",
    "POST",
    summary="Record a payment or refill with its receipt (postpaid: allocated to open invoices).",
    tag="Money",
    body=schemas.MoneyPost,
    responses={201: schemas.PostedOut},
    idempotent=True,
    errors=(404,),
)
def post_payment(account_id: int):
    """A payment."""
    return _money(account_id, add_payment)


@operation(
    "/accounts/<int:account_id>/charges",
    "POST",
    summary="Record a one-off charge (prepaid: taxed on a receipt; postpaid: next invoice).",
    tag="Money",
    body=schemas.MoneyPost,
    responses={201: schemas.PostedOut},
    idempotent=True,
    errors=(404,),
)
def post_charge(account_id: int):
    """A charge."""
    return _money(account_id, add_charge)


@operation(
    "/rate-groups",
    "GET",
    summary="Rate groups the key's owner may assign.",
    tag="Tariffs",
    responses={200: schemas.RateGroupList},
)
def list_rate_groups():
    """Every visible rate group, by name."""
    groups = db.session.scalars(visible_rate_groups(_actor()).order_by(RateGroup.name))
    return jsonify(
        items=[
            schemas.RateGroupOut(
                id=group.id,
                name=group.name,
                currency=group.currency,
                status=group.status,
                reseller_id=group.reseller_id,
            ).model_dump(mode="json")
            for group in groups
        ]
    )


@operation(
    "/taxes",
    "GET",
    summary="Taxes the key's owner may assign.",
    tag="Tariffs",
    responses={200: schemas.TaxList},
)
def list_taxes():
    """Every visible tax, by priority and name."""
    taxes = db.session.scalars(visible_taxes(_actor()).order_by(Tax.priority, Tax.name))
    return jsonify(
        items=[
            schemas.TaxOut(
                id=tax.id,
                name=tax.name,
                rate=format(tax.rate.normalize(), "f"),
                fixed_amount=format(tax.fixed_amount.normalize(), "f"),
                priority=tax.priority,
                status=tax.status,
                reseller_id=tax.reseller_id,
            ).model_dump(mode="json")
            for tax in taxes
        ]
    )
