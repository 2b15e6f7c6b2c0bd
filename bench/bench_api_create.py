"""API create throughput (POST /api/v1/accounts) beside the form's create and a trivial API read."""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_create import fresh_numbers, payload  # noqa: E402
from bench.common import (  # noqa: E402
    ADMIN_PASSWORD,
    FAST_HASH,
    csrf_from,
    login,
    make_app,
    migrate,
    postgres_database,
    sqlite_database,
    summary,
    timed,
    write_json,
)
from portal.accounts.service import create_admin  # noqa: E402
from portal.apikeys.service import create_key  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import RateGroup, Tax  # noqa: E402
from portal.tariffs.service import ensure_default_rate_group  # noqa: E402


def api_body(number: str, index: int, group_id: int, tax_id: int) -> dict:
    """The form's payload as API JSON (same values, JSON types)."""
    form = payload(number, index, group_id, tax_id, "")
    del form["csrf_token"]
    for field in ("max_channels", "valid_days", "billing_day", "rate_group_id"):
        form[field] = int(form[field])
    form["tax_ids"] = [tax_id]
    form["create_sip_device"] = form["email_alerts"] = True
    return form


def _seed(app) -> tuple[str, str, int, int]:
    """An admin with an API key, a GBP rate group and a tax: (admin number, key, group, tax)."""
    migrate(app)
    with app.app_context():
        admin = create_admin("admin@bench.example", ADMIN_PASSWORD)
        ensure_default_rate_group("GBP")
        db.session.add(Tax(name="VAT", rate=20, fixed_amount=0))
        db.session.commit()
        _row, key = create_key(admin, "bench", "")
        return (
            admin.account_number,
            key,
            db.session.scalar(db.select(RateGroup.id)),
            db.session.scalar(db.select(Tax.id)),
        )


def run(backend: str, url: str, count: int, method: str) -> dict:
    """`count` API creates, `count` form creates and a baseline read, on one database."""
    app = make_app(url, method)
    admin_number, key, group_id, tax_id = _seed(app)
    headers = {"Authorization": f"Bearer {key}"}
    api = app.test_client()
    form_client = app.test_client()
    login(form_client, admin_number)
    token = csrf_from(form_client.get("/accounts/new").get_data(as_text=True))
    numbers = iter(fresh_numbers(2 * count + 10))
    figures: dict[str, list[float]] = {"api": [], "form": []}
    failures = 0
    walls = {}
    for kind in ("api", "form"):
        start_wall = time.perf_counter()
        for index in range(count):
            number = next(numbers)
            start = time.perf_counter()
            if kind == "api":
                body = api_body(number, index, group_id, tax_id)
                body["email"] = f"api{index}@example.com"
                response = api.post("/api/v1/accounts", json=body, headers=headers)
                ok = response.status_code == 201
            else:
                response = form_client.post(
                    "/accounts/new", data=payload(number, index, group_id, tax_id, token)
                )
                ok = response.status_code == 200 and "Secret123x" in response.get_data(True)
            figures[kind].append((time.perf_counter() - start) * 1000)
            failures += not ok
        walls[kind] = time.perf_counter() - start_wall
    baseline = timed(lambda: api.get("/api/v1/rate-groups", headers=headers), 200)
    with app.app_context():
        db.engine.dispose()
    api_figures, form_figures, base = (
        summary(figures["api"]),
        summary(figures["form"]),
        summary(baseline),
    )
    return {
        "backend": backend,
        "method": method,
        "count": count,
        "failures": failures,
        "api": api_figures,
        "api_seconds": walls["api"],
        "api_per_second": count / walls["api"],
        "form": form_figures,
        "form_seconds": walls["form"],
        "baseline_read": base,
        "api_vs_form": api_figures["median_ms"] / form_figures["median_ms"],
        "api_vs_read": api_figures["median_ms"] / base["median_ms"],
    }


def report(result: dict) -> None:
    """Print one run's figures."""
    api, form, base = result["api"], result["form"], result["baseline_read"]
    print(f"\n{result['backend']}, hash {result['method']}, {result['count']} accounts each:")
    print(
        f"  API create:  {result['api_seconds']:.1f} s, {result['api_per_second']:.0f}/s, "
        f"median {api['median_ms']:.1f} ms, p90 {api['p90_ms']:.1f} ms"
    )
    print(
        f"  form create: {result['form_seconds']:.1f} s, median {form['median_ms']:.1f} ms "
        f"(API / form {result['api_vs_form']:.2f}x)"
    )
    print(
        f"  baseline GET /api/v1/rate-groups: median {base['median_ms']:.2f} ms "
        f"(create / read {result['api_vs_read']:.1f}x); failures {result['failures']}"
    )


def main(argv: list[str] | None = None) -> list[dict]:
    """SQLite (and PostgreSQL with --postgres), fast hash and the production scrypt."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=300, help="accounts per kind")
    parser.add_argument("--scrypt-count", type=int, default=30, help="accounts with scrypt")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    backends = [("SQLite", sqlite_database)]
    if args.postgres:
        backends.append(("PostgreSQL", postgres_database))
    for backend, database in backends:
        for method, count in ((FAST_HASH, args.count), ("scrypt", args.scrypt_count)):
            with database() as url:
                results.append(run(backend, url, count, method))
                report(results[-1])
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
