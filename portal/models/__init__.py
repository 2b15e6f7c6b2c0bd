"""Database models, one module per aggregate."""

from portal.models.access import AccountBlockedPrefix, IpTrunk, RateGroupBlockedPrefix
from portal.models.account import (
    Account,
    AccountSearchToken,
    AccountType,
    BillingSchedule,
    Role,
    SipDevice,
    Status,
    account_taxes,
    available_funds,
    is_expired,
    utcnow,
)
from portal.models.audit import AuditEntry
from portal.models.billing import (
    Allocation,
    Document,
    DocumentKind,
    DocumentLine,
    DocumentSequence,
    DocumentStatus,
    EntryKind,
    LedgerEntry,
    OutboxMessage,
)
from portal.models.bundle import BundleUsage
from portal.models.calls import (
    ApiKey,
    Call,
    CallCharge,
    CallRollup,
    CallStatus,
    IdempotencyRecord,
)
from portal.models.job import Job, JobFile, JobStatus
from portal.models.product import (
    Product,
    ProductPeriod,
    ProductPrefix,
    Subscription,
    SubscriptionCharge,
)
from portal.models.profile import InvoiceProfile
from portal.models.session import LoginFailureCounter, LoginSession
from portal.models.setting import Setting
from portal.models.tariff import Rate, RateGroup
from portal.models.tax import Tax

__all__ = [
    "Account",
    "AccountBlockedPrefix",
    "AccountSearchToken",
    "AccountType",
    "Allocation",
    "ApiKey",
    "Call",
    "CallCharge",
    "CallRollup",
    "CallStatus",
    "AuditEntry",
    "BillingSchedule",
    "BundleUsage",
    "Document",
    "DocumentKind",
    "DocumentLine",
    "DocumentSequence",
    "DocumentStatus",
    "EntryKind",
    "IdempotencyRecord",
    "InvoiceProfile",
    "IpTrunk",
    "Job",
    "JobFile",
    "JobStatus",
    "LedgerEntry",
    "LoginFailureCounter",
    "LoginSession",
    "OutboxMessage",
    "Product",
    "ProductPeriod",
    "ProductPrefix",
    "Rate",
    "RateGroup",
    "RateGroupBlockedPrefix",
    "Role",
    "Setting",
    "SipDevice",
    "Status",
    "Subscription",
    "SubscriptionCharge",
    "Tax",
    "account_taxes",
    "available_funds",
    "is_expired",
    "utcnow",
]
