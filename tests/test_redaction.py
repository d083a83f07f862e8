"""The shared redaction of what destinations say: every form of a secret, HTML as text."""

import base64
import html
import json
from urllib.parse import quote, quote_plus

import pytest

from extensions.redaction import Redactor

SECRET = 'S3cret pä/ss+word&"x'
USER = "intake"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


FORMS = {
    "plain": SECRET,
    "quote": quote(SECRET, safe=""),
    "quote keeping /": quote(SECRET),
    "quote_plus": quote_plus(SECRET),
    "lower-case percent": quote(SECRET, safe="").lower().replace("s3cret", "S3cret"),
    "json": json.dumps(SECRET)[1:-1],
    "json, not ascii": json.dumps(SECRET, ensure_ascii=False)[1:-1],
    "json, slash escaped": json.dumps(SECRET)[1:-1].replace("/", "\\/"),
    "html-escaped": html.escape(SECRET),
    "base64 of the secret": b64(SECRET),
    "base64 without padding": b64(SECRET).rstrip("="),
    "url-safe base64": base64.urlsafe_b64encode(SECRET.encode()).decode(),
    "Basic pair": b64(f"{USER}:{SECRET}"),
    "SASL PLAIN": b64(f"\0{USER}\0{SECRET}"),
}


@pytest.mark.parametrize("form", FORMS)
def test_every_form_of_a_secret_is_removed(form):
    encoded = FORMS[form]
    assert encoded != SECRET or form == "plain"
    redacted = Redactor([SECRET], user=USER).redact(f"refused ({encoded}) for {USER}")
    assert redacted == f"refused (***) for {USER}"


def test_bearer_and_every_stored_secret():
    redactor = Redactor(["tok-123456789", "", None, "second-secret"])
    assert redactor.redact("Bearer tok-123456789 / second-secret") == "Bearer *** / ***"


def test_nothing_to_hide_leaves_the_text_alone():
    assert Redactor([]).redact("HTTP 400: Bad request") == "HTTP 400: Bad request"
    assert Redactor([""]).one_line("  Bad \r\n request ") == "Bad request"


def test_a_short_secret_is_removed_only_where_it_stands_alone():
    redactor = Redactor(["e"], user="u")
    assert redactor.redact("Bad request") == "Bad request"
    assert redactor.redact("password e rejected (pw=e)") == "password *** rejected (pw=***)"
    assert Redactor(["abc12"]).redact("xabc12 and abc12.") == "xabc12 and ***."
    # From six characters on, a secret is removed wherever it is, even glued to a word.
    assert Redactor(["abc123"]).redact("tokenabc123end") == "token***end"


def test_html_becomes_the_first_sentence_of_its_text():
    page = (
        "<!doctype html><html><head><title>500 Internal Error</title>"
        "<style>h1 { color: red }</style><script>alert('not text')</script></head>"
        "<body><h1>Something went&nbsp;wrong &amp; we know. Details follow.</h1>"
        "<p>More</p></body></html>"
    )
    assert Redactor([]).one_line(page) == "Something went wrong & we know."


def test_html_without_a_body_text_gives_its_title():
    page = "<html><head><title>503 Service Unavailable</title></head><body></body></html>"
    assert Redactor([]).one_line(page) == "503 Service Unavailable"


def test_html_by_content_type_and_a_long_sentence_is_cut_at_a_word():
    text = "<p>" + "word " * 100 + "</p>"
    said = Redactor([]).one_line(text, content_type="text/html; charset=utf-8", limit=50)
    assert said.endswith("word…") and len(said) <= 50
    # Without the content type, text that merely starts with a tag stays as it is.
    assert Redactor([]).one_line("<Invoice> lacks a BuyerReference") == (
        "<Invoice> lacks a BuyerReference"
    )


def test_xml_elements_separate_words():
    answer = "<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>No.</Message></Error>"
    assert Redactor([]).one_line(answer) == "AccessDenied No."


def test_markup_cannot_hide_a_secret():
    redactor = Redactor(["hunter22"])
    page = "<html><body><p>pass hun<b></b>ter22 and hunter&#50;2 refused</p></body></html>"
    assert redactor.one_line(page) == "pass *** and *** refused"


def test_plain_text_is_one_line_cut_at_the_limit():
    said = Redactor(["tok-123456789"]).one_line(b"bad\r\n\x1b[31mtok-123456789\x00 " + b"x" * 500)
    assert said.startswith("bad [31m*** xxx")
    assert len(said) == 200
    assert not any(ord(char) < 32 for char in said)
