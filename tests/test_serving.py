"""How answers travel: gzip when the client accepts it, static files cached under their hash."""

import gzip
import hashlib
import re
from pathlib import Path

from flask import url_for

from tests.conftest import ROOT, make_test_app

GZIP = {"Accept-Encoding": "gzip, deflate, br, zstd"}


def _static_urls(html: str) -> list[str]:
    """The /static/ addresses a page links to (stylesheets, scripts, icons)."""
    return re.findall(r'(?:href|src)="(/static/[^"]+)"', html)


def _hash_of(static_path: str) -> str:
    """The first 12 hex digits of the SHA-256 of a file under static/."""
    return hashlib.sha256((ROOT / "static" / static_path).read_bytes()).hexdigest()[:12]


def test_a_page_comes_gzip_encoded_when_the_browser_accepts_it(client):
    response = client.get("/login", headers=GZIP)
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in response.headers["Vary"]
    page = gzip.decompress(response.data).decode()
    assert "<form" in page and "Log in" in page
    assert int(response.headers["Content-Length"]) == len(response.data)


def test_a_page_is_plain_for_a_client_that_does_not_accept_gzip(client):
    response = client.get("/login")
    assert "Content-Encoding" not in response.headers
    assert "<form" in response.get_data(as_text=True)


def test_a_fragment_an_htmx_request_gets_is_gzip_encoded(as_admin, tenants):
    response = as_admin.get("/accounts/", headers={"HX-Request": "true", **GZIP})
    assert response.status_code == 200
    assert response.headers["Content-Encoding"] == "gzip"
    fragment = gzip.decompress(response.data).decode()
    assert "<html" not in fragment and tenants["b_customer"].account_number in fragment


def test_tiny_json_answers_are_not_compressed(client):
    response = client.get("/api/v1/accounts", headers=GZIP)
    assert response.status_code == 401 and response.is_json
    assert "Content-Encoding" not in response.headers


def test_call_authorization_is_answered_uncompressed(api, call_rates):
    response = api.post("/api/v1/calls/authorize", json={"call_id": "c1"}, headers=GZIP)
    assert response.is_json
    assert "Content-Encoding" not in response.headers


def test_static_urls_in_a_page_carry_the_hash_of_the_file(client):
    urls = _static_urls(client.get("/login").get_data(as_text=True))
    assert any("css/" in url for url in urls) and any(".js" in url for url in urls)
    for url in urls:
        path, _, query = url.removeprefix("/static/").partition("?")
        assert query == f"v={_hash_of(path)}"


def test_a_versioned_static_file_is_cached_for_a_year(client):
    for url in _static_urls(client.get("/login").get_data(as_text=True)):
        response = client.get(url)
        assert response.status_code == 200
        cache = response.cache_control
        assert cache.max_age == 31_536_000 and cache.public and cache.immutable
        assert not cache.no_cache


def test_an_unversioned_or_outdated_static_url_is_revalidated(client):
    url = _static_urls(client.get("/login").get_data(as_text=True))[0]
    path = url.partition("?")[0]
    for stale in (path, path + "?v=0123456789ab"):
        response = client.get(stale)
        assert response.status_code == 200
        assert response.cache_control.no_cache and response.cache_control.max_age is None
        assert "immutable" not in response.headers["Cache-Control"]


def test_a_static_file_comes_gzip_encoded_with_its_long_cache(client):
    url = next(u for u in _static_urls(client.get("/login").get_data(as_text=True)) if ".js" in u)
    response = client.get(url, headers=GZIP)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.cache_control.immutable
    path = url.removeprefix("/static/").partition("?")[0]
    assert gzip.decompress(response.data) == (ROOT / "static" / path).read_bytes()


def test_an_edited_static_file_gets_a_new_url_in_debug_mode(database_url, _migrated, tmp_path):
    static = tmp_path / "static"
    (static / "css").mkdir(parents=True)
    stylesheet = static / "css" / "portal.css"
    stylesheet.write_text("body { color: black; }")
    app = make_test_app(database_url, DEBUG=True)
    app.static_folder = str(static)
    with app.test_request_context():
        before = url_for("static", filename="css/portal.css")
        stylesheet.write_text("body { color: navy; }")
        after = url_for("static", filename="css/portal.css")
    assert before != after
    assert after.endswith("v=" + hashlib.sha256(Path(stylesheet).read_bytes()).hexdigest()[:12])


def test_compression_can_be_left_to_a_proxy(database_url, _migrated, monkeypatch):
    monkeypatch.setenv("COMPRESS_RESPONSES", "0")
    response = make_test_app(database_url).test_client().get("/login", headers=GZIP)
    assert response.status_code == 200
    assert "Content-Encoding" not in response.headers
    assert "<form" in response.get_data(as_text=True)
