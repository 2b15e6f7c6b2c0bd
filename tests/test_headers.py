"""Browser security headers (CSP, framing, sniffing, referrer) and no-store on every answer."""

import pytest

from portal.headers import CONTENT_SECURITY_POLICY

EXPECTED = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def assert_secure(response) -> None:
    """Every security header is there, and the answer may not be stored."""
    for name, value in EXPECTED.items():
        assert response.headers.get(name) == value, (name, response.headers.get(name))
    assert "Expires" not in response.headers


def test_policy_is_strict():
    """default-src 'self', no inline script or style, no framing by anyone."""
    directives = dict(
        part.strip().split(" ", 1) for part in CONTENT_SECURITY_POLICY.split(";") if part.strip()
    )
    assert directives["default-src"] == "'self'"
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY


def test_headers_on_a_page_and_the_login_page(as_admin):
    """The dashboard and the login page carry the headers."""
    assert_secure(as_admin.get("/"))
    assert_secure(as_admin.client.get("/login"))


def test_headers_on_an_htmx_fragment(as_admin):
    """A fragment swapped in by htmx carries them too."""
    response = as_admin.get("/accounts/?q=1", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert "<html" not in response.get_data(as_text=True)
    assert_secure(response)


def test_headers_on_a_csv_download(as_admin, default_rate_group):
    """A download (the rates as CSV) is not kept by any cache."""
    response = as_admin.get(f"/tariff/rate-groups/{default_rate_group.id}/export.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert_secure(response)


def test_headers_on_api_answers(rest, api):
    """A REST answer, an API error and the call lane's answer (outside Flask's hooks)."""
    assert_secure(rest.get("/accounts"))
    assert_secure(rest.get("/accounts/999999"))
    answer = api.authorize(call_id="c1", destination="44123", account="nobody")
    assert answer.status_code in (400, 404, 403, 200)
    assert_secure(answer)


def test_headers_on_error_pages(client):
    """A 404 page is covered like the others."""
    assert_secure(client.get("/no-such-page"))


@pytest.mark.parametrize("filename", ["css/portal.css", "js/portal.js"])
def test_static_files_keep_their_long_caching(client, filename):
    """A versioned static file is cached for a year, and still sent with nosniff."""
    page = client.get("/login").get_data(as_text=True)
    marker = f"/static/{filename}?v="
    start = page.index(marker)
    url = page[start : page.index('"', start)]
    response = client.get(url)
    assert response.status_code == 200
    assert "no-store" not in response.headers["Cache-Control"]
    assert "immutable" in response.headers["Cache-Control"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_no_inline_script_or_style_in_pages(as_admin, customer):
    """Pages hold no inline script, style attribute or on* handler (the CSP would block them)."""
    for url in ("/", "/accounts/", f"/accounts/{customer.id}", "/accounts/new/customer"):
        html = as_admin.get(url).get_data(as_text=True)
        assert "<script>" not in html and "style=" not in html and "<style" not in html, url
        assert "onclick=" not in html and "onchange=" not in html, url
