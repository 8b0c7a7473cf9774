"""The few web pages pimbot serves itself: the end of a sign-in (``/auth/callback``).

Small, static, accessible HTML: a language, a title and one heading that say the outcome, text
that works without colour, no script, nothing loaded from elsewhere. Every value is escaped.
"""

from __future__ import annotations

from html import escape

from bot.use_cases.delegated import SignInOutcome

# Sent with every page: nothing framed, nothing loaded, the URL (it held a code) never
# leaked as a referrer, and no copy kept by a browser or proxy.
PAGE_HEADERS = [
    ("Content-Type", "text/html; charset=utf-8"),
    ("Cache-Control", "no-store"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
        "form-action 'none'; base-uri 'none'",
    ),
]

_STYLE = (
    "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;"
    "background:#f6f6f6;color:#1d1c1d}"
    "main{max-width:34rem;margin:4rem auto;padding:2rem;background:#fff;border-radius:8px;"
    "box-shadow:0 1px 3px rgba(0,0,0,.15)}"
    "h1{font-size:1.5rem;margin:0 0 1rem}"
    "p{font-size:1.05rem;line-height:1.5}"
    ".ok h1::before{content:'\\2713  ';color:#007a5a}"
    ".refused h1::before{content:'\\2717  ';color:#b00020}"
    "small{color:#555}"
)


def sign_in_page(outcome: SignInOutcome) -> bytes:
    kind = "ok" if outcome.ok else "refused"
    return _page(
        title=outcome.title,
        kind=kind,
        paragraphs=[outcome.message],
        footer="pimbot: privileged access through Slack",
    )


def error_page(reference: str) -> bytes:
    return _page(
        title="Something went wrong",
        kind="refused",
        paragraphs=[
            "pimbot could not finish this sign-in. Nothing was stored. Go back to Slack and "
            "run /pim connect to try again.",
            f"If it keeps happening, give your administrator this reference: {reference}",
        ],
        footer="pimbot",
    )


def _page(*, title: str, kind: str, paragraphs: list[str], footer: str) -> bytes:
    body = "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
    html = (
        "<!DOCTYPE html>"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · pimbot</title><style>{_STYLE}</style></head>"
        f'<body><main class="{kind}" role="main" aria-live="polite">'
        f'<h1 id="outcome">{escape(title)}</h1>{body}<small>{escape(footer)}</small>'
        "</main></body></html>"
    )
    return html.encode("utf-8")
