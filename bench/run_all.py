"""Run the create, mass-create, list, export, rates, billing and authorize benchmarks; summary."""

import argparse
import json
import platform
import sys
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import (  # noqa: E402
    bench_api_create,
    bench_authorize,
    bench_billing,
    bench_create,
    bench_export,
    bench_list,
    bench_mass_create,
    bench_rates,
)
from bench.bench_list import compare  # noqa: E402


def create_rows(results: list[dict]) -> list[tuple[str, str, str]]:
    """Summary rows of the create-account benchmark."""
    rows = []
    for result in results:
        name = f"create POST ({result['method']})"
        create, base = result["create"], result["baseline_login_get"]
        rows += [
            (name, "median latency", f"{create['median_ms']:.1f} ms"),
            (name, "throughput", f"{result['accounts_per_second']:.1f} accounts/s"),
            (name, "baseline GET /login median", f"{base['median_ms']:.2f} ms"),
            (name, "ratio create / baseline", f"{result['ratio']:.1f}x"),
            (name, "one password hash alone", f"{result['hash_only_ms']:.1f} ms"),
        ]
    return rows


def mass_rows(results: list[dict]) -> list[tuple[str, str, str]]:
    """Summary rows of the mass-create benchmark."""
    rows = []
    for result in results:
        name = f"mass create ({result['backend']})"
        rows += [
            (
                name,
                f"mass_create {result['count']:,}",
                f"{result['mass_s']:.2f} s, {result['mass_per_s']:.0f} accounts/s",
            ),
            (
                name,
                "baseline create_account (extrapolated)",
                f"{result['single_extrapolated_s']:.0f} s ({result['ratio']:.0f}x slower)",
            ),
            (name, f"CSV import {result['count']:,} rows", f"{result['import_s']:.2f} s"),
        ]
    return rows


def api_rows(results: list[dict]) -> list[tuple[str, str, str]]:
    """Summary rows of the API create benchmark."""
    return [
        (
            f"API create ({result['backend']}, {result['method']})",
            f"{result['count']} POST /api/v1/accounts",
            f"{result['api_seconds']:.1f} s, {result['api_per_second']:.0f}/s, median "
            f"{result['api']['median_ms']:.1f} ms ({result['api_vs_form']:.2f}x the form's)",
        )
        for result in results
    ]


def list_rows(results: list[dict]) -> list[tuple[str, str, str]]:
    """Summary rows of the accounts-list benchmark (results come in small, large pairs)."""
    rows = []
    for small, large in zip(results[::2], results[1::2], strict=True):
        name = f"accounts list ({small['backend']})"
        for row in compare(small, large):
            (h1, h2), (q1, q2) = row["http"], row["query"]
            rows.append(
                (
                    name,
                    f"{row['case']} [{row['matches']} at {large['size']:,}]",
                    f"GET {h1:.2f} -> {h2:.2f} ms ({row['http_ratio']:.2f}x); "
                    f"query {q1:.2f} -> {q2:.2f} ms ({row['query_ratio']:.2f}x)",
                )
            )
    return rows


def export_rows(results: list[dict]) -> list[tuple[str, str, str]]:
    """Summary rows of the customers CSV export benchmark."""
    rows = []
    for result in results:
        name = f"customers CSV export under gunicorn ({result['backend']})"
        rows.append((name, "baseline GET /accounts/ median", f"{result['list_ms']:.1f} ms"))
        for encoding in ("plain", "gzip"):
            part = result[encoding]
            rows.append(
                (
                    name,
                    f"{result['exported']:,} accounts, {encoding}",
                    f"{part['seconds']:.2f} s ({part['ratio_to_list']:,.0f}x the list), "
                    f"{part['megabytes']:.1f} MB, worker peak RSS +{part['peak_growth_mb']:.1f} MB",
                )
            )
    return rows


def rates_rows(results: list[dict]) -> list[tuple[str, str, str]]:
    """Summary rows of the rates benchmark."""
    rows = []
    for result in results:
        name = f"rates ({result['backend']})"
        for item in result["imports"]:
            rows.append(
                (
                    name,
                    f"CSV import {item['rows']:,} rows",
                    f"{item['seconds']:.2f} s, peak {item['peak_mb']:.0f} MB",
                )
            )
        rows += [
            (
                name,
                f"bulk vs row-by-row ({result['baseline_rows']:,} rows)",
                f"{result['naive_s'] / result['bulk_s']:.0f}x faster",
            ),
            (name, f"find_rate over {result['rates']:,}", f"{result['find_rate_us']:.1f} µs"),
            (name, "lookup_rate (SQL)", f"{result['db_lookup_us']:.0f} µs"),
            (name, "linear scan baseline", f"{result['scan_us']:.0f} µs"),
        ]
    return rows


def billing_rows(results: list[dict]) -> list[tuple[str, str, str]]:
    """Summary rows of the billing-run benchmark (one result per backend, two sizes each)."""
    rows = []
    for result in results:
        name = f"billing run ({result['backend']})"
        for size in (result["small"], result["large"]):
            first, count = size["first"], size["accounts"]
            rows.append(
                (
                    name,
                    f"{count:,} accounts, {size['entries']:,} entries",
                    f"{first['seconds']:.1f} s, {count / first['seconds']:.0f} invoices/s, "
                    f"{first['statements'] / count:.1f} SQL/invoice, "
                    f"peak RSS +{first['rss_growth_mb']:.0f} MB",
                )
            )
        small, large = result["small"], result["large"]
        rows += [
            (
                name,
                f"scaling {small['accounts']:,} -> {large['accounts']:,}",
                f"time {result['time_ratio']:.1f}x (linear {result['scale']:.0f}x), "
                f"CPU {result['cpu_ratio']:.1f}x",
            ),
            (
                name,
                f"second run {large['accounts']:,} (bills nothing)",
                f"{large['second']['seconds']:.2f} s",
            ),
            (
                name,
                f"baseline: stream {large['accounts']:,} accounts",
                f"{large['examine_seconds']:.2f} s ({result['examine_ratio']:.1f}x the small one)",
            ),
        ]
    return rows


def authorize_rows(results: list[dict]) -> list[tuple[str, str, str]]:
    """Summary rows of the call authorization benchmark."""
    rows = []
    for result in results:
        name = f"authorize under gunicorn ({result['backend']})"
        bare, authorize = result["bare"], result["authorize"]
        rows += [
            (name, "bare endpoint", f"{bare['requests_per_second']:.0f} req/s"),
            (
                name,
                "authorize",
                f"{authorize['requests_per_second']:.0f} req/s, p99 {authorize['p99_ms']:.1f} ms",
            ),
            (name, "authorize / bare (median of rounds)", f"{result['median_ratio']:.0%}"),
        ]
        if "chain_cost" in result:
            rows.append(
                (
                    name,
                    "2 reseller levels / single level",
                    f"{result['chain_cost']:.2f}x the time",
                )
            )
    return rows


def print_table(rows: list[tuple[str, str, str]]) -> None:
    """Print rows as an aligned three-column table."""
    header = ("benchmark", "case", "figure")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    line = "  ".join("-" * w for w in widths)
    print("\n" + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
    print(line)
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def main(argv: list[str] | None = None) -> None:
    """Run every benchmark (PostgreSQL too with --postgres) and print the summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=300, help="accounts to create")
    parser.add_argument("--repeat", type=int, default=50, help="list requests per case")
    parser.add_argument("--small", type=int, default=1_000, help="accounts in the small list")
    parser.add_argument("--large", type=int, default=100_000, help="accounts in the large list")
    parser.add_argument("--postgres", action="store_true", help="list benchmark on PostgreSQL too")
    parser.add_argument(
        "--billing-large", type=int, default=100_000, help="accounts in the large billing run"
    )
    parser.add_argument("--json", type=Path, help="also write all results to this file")
    args = parser.parse_args(argv)

    print("== create account ==")
    created = bench_create.main(["--count", str(args.count)])
    print("\n== mass create ==")
    massed = bench_mass_create.main(["--postgres"] if args.postgres else [])
    print("\n== API create ==")
    api_created = bench_api_create.main(["--postgres"] if args.postgres else [])
    print("\n== accounts list ==")
    list_args = ["--repeat", str(args.repeat), "--small", str(args.small)]
    list_args += ["--large", str(args.large)] + (["--postgres"] if args.postgres else [])
    listed = bench_list.main(list_args)
    print("\n== customers CSV export ==")
    export_args = ["--count", str(args.large)] + (["--postgres"] if args.postgres else [])
    exported = bench_export.main(export_args)
    print("\n== rates ==")
    rated = bench_rates.main(["--postgres"] if args.postgres else [])
    print("\n== billing run ==")
    billing_args = ["--large", str(args.billing_large)] + (["--postgres"] if args.postgres else [])
    billed = bench_billing.main(billing_args)
    print("\n== call authorization ==")
    # --chain: customers two reseller levels deep in the same rounds (the cost chain's price).
    authorized = bench_authorize.main(["--chain"] + (["--postgres"] if args.postgres else []))

    print(f"\n== summary ({date.today()}, {platform.python_version()}, {platform.machine()}) ==")
    print_table(
        create_rows(created)
        + mass_rows(massed)
        + api_rows(api_created)
        + list_rows(listed)
        + export_rows(exported)
        + rates_rows(rated)
        + billing_rows(billed)
        + authorize_rows(authorized)
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "create": created,
                    "mass_create": massed,
                    "api_create": api_created,
                    "list": listed,
                    "export": exported,
                    "rates": rated,
                    "billing": billed,
                    "authorize": authorized,
                },
                default=str,
            )
        )


if __name__ == "__main__":
    main()
