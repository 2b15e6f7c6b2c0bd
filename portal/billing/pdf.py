"""Receipts and invoices as PDF files: the print view's template, rendered by WeasyPrint."""

import base64
from functools import lru_cache
from pathlib import Path

from flask import current_app, render_template
from weasyprint import CSS, HTML
from weasyprint.urls import URLFetcher

from portal import mail
from portal.billing import bp
from portal.billing.profile import IssuerProfile, issuer_profile, logo_of
from portal.billing.usage import billing_period, usage_of
from portal.models import Document

STYLESHEET = "css/document-pdf.css"
PDF_TYPE = "application/pdf"


def document_context(document: Document) -> dict:
    """What the document's template shows besides the document: issuer, period, usage."""
    return {
        "document": document,
        "issuer": issuer_profile(document.issuer_key),
        "period": billing_period(document),
        "usage": usage_of(document),
    }


def pdf_filename(document: Document) -> str:
    """INV-000123.pdf, R-000042.pdf."""
    return f"{document.display_number}.pdf"


def _fetcher() -> URLFetcher:
    """Resources a PDF may load: data: URIs only (the logo), never the network or a file."""
    # Nothing in the template points elsewhere; this keeps it so if someone adds an <img src>
    # (a request back to the portal would also need the viewer's session, and could deadlock
    # a single-worker server).
    return URLFetcher(allowed_protocols=("data",), timeout=2)


def _logo_src(issuer: IssuerProfile) -> str | None:
    """The issuer's logo as a data: URI, embedded in the PDF."""
    logo = logo_of(issuer.issuer_key) if issuer.has_logo else None
    if logo is None:
        return None
    content, media_type = logo
    return f"data:{media_type};base64,{base64.b64encode(content).decode('ascii')}"


@lru_cache(maxsize=4)
def _stylesheet_text(path: str) -> str:
    """The PDF stylesheet, read once per process."""
    return Path(path).read_text(encoding="utf-8")


def render_pdf(document: Document) -> bytes:
    """The document as a PDF, its times in its account's timezone (as its mail shows them)."""
    context = document_context(document)
    html = render_template(
        "billing/document_pdf.html",
        pdf=True,
        zone=document.account.timezone or "UTC",
        logo_src=_logo_src(context["issuer"]),
        **context,
    )
    fetcher = _fetcher()
    stylesheet = CSS(
        string=_stylesheet_text(str(Path(current_app.static_folder) / STYLESHEET)),
        url_fetcher=fetcher,
    )
    return HTML(string=html, url_fetcher=fetcher).write_pdf(stylesheets=[stylesheet])


def _attachment(document: Document) -> tuple[str, str, bytes]:
    """A document mail's attachment: (file name, media type, its PDF), rendered when sent."""
    return pdf_filename(document), PDF_TYPE, render_pdf(document)


@bp.record_once
def _attach_documents_to_mail(_state) -> None:
    """The outbox (below billing) sends document mails with their PDF."""
    # When the blueprint is registered, not at import: portal.mail may still be importing then.
    mail.register_document_attachment(_attachment)
