"""htmx helpers: fragment-or-page rendering and redirects htmx can follow."""

from flask import make_response, redirect, render_template, request


def is_htmx() -> bool:
    """True for an htmx request wanting a fragment (not boosted navigation or history restore)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-Boosted") != "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render_page_or_fragment(page_template: str, fragment_template: str, **context):
    """Render the fragment for htmx, else the full page; the answer varies on HX-Request."""
    template = fragment_template if is_htmx() else page_template
    response = make_response(render_template(template, **context))
    response.vary.add("HX-Request")
    return response


def render_fragment(fragment: str, **context):
    """Render a partial template on its own (htmx partial endpoints)."""
    response = make_response(render_template(fragment, **context))
    response.vary.add("HX-Request")
    return response


def redirect_to(url: str):
    """Redirect: a 303 for plain requests, HX-Redirect for htmx (htmx must never get a 302)."""
    if request.headers.get("HX-Request") == "true":
        response = make_response("", 204)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, code=303)
