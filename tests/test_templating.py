"""How the pages show times and values (portal.templating), without a request."""

from datetime import date, datetime

from portal.templating import calendar_date_text, datetime_text, human, local_date_text


def test_babel_formats_a_time_in_the_zone_given_and_a_calendar_date_unshifted():
    moment = datetime(2026, 3, 29, 0, 30)
    assert datetime_text(moment, "Asia/Kolkata") == "29 Mar 2026, 06:00:00"
    assert datetime_text(moment, "America/New_York") == "28 Mar 2026, 20:30:00"
    assert local_date_text(moment, "America/New_York") == "28 Mar 2026"
    assert calendar_date_text(date(2026, 3, 29)) == "29 Mar 2026"
    assert datetime_text(None) == "" and calendar_date_text(None) == ""


def test_values_are_shown_in_words_never_as_python_reprs():
    assert [human(True), human(False), human(None), human([]), human(["VAT", "GST"])] == [
        "Yes",
        "No",
        "none",
        "none",
        "VAT, GST",
    ]
    assert human({"prefix": "44", "connect_cost": "0"}) == "prefix 44, connect cost 0"
