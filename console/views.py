"""HTML pages of the console (server-rendered; charts drawn by static/console.js)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from console.admin import ACTION_LABELS
from console.html import Markup, join, render, url
from console.queries import (
    DEFAULT_SORT,
    INBOX_VIEWS,
    INTERRUPTED,
    PENDING,
    SORTS,
    STATUS_LABELS,
    STATUSES,
    ConversationPage,
    ConversationRow,
    Dashboard,
    Filters,
    InboxPage,
    Item,
    Mark,
    Transcript,
)
from tracking import conventions as conv

NAV = (("conversations", "/conversations", "Conversations"), ("inbox", "/nlu-inbox", "NLU inbox"),
       ("dashboard", "/dashboard", "Dashboard"), ("support", "/support-requests", "Support requests"),
       ("privacy", "/privacy", "Personal data"), ("links", "/links", "Chat links"))


def fmt_time(timestamp: Optional[float]) -> str:
    """``2024-06-30 14:05 UTC``."""
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def fmt_conf(value: Optional[float]) -> str:
    """Confidence with two decimals, or a dash."""
    return "-" if value is None else f"{value:.2f}"


def fmt_pct(value: Optional[float]) -> str:
    """A share as a percentage, or a dash."""
    return "-" if value is None else f"{value * 100:.1f}%"


def csrf_field(token: str) -> Markup:
    """Hidden CSRF token field for a form."""
    return render('<input type="hidden" name="csrf_token" value="{token}">', token=token)


def layout(title: str, body: Markup, *, email: Optional[str], csrf: Optional[str], active: str = "") -> Markup:
    """The page frame: header, navigation, sign-out, main content."""
    header = Markup("")
    script = Markup("")
    if email:
        links = join(
            render('<a href="{href}"{current}>{label}</a>', href=href, label=label,
                   current=Markup(' aria-current="page"') if key == active else "")
            for key, href, label in NAV
        )
        header = render(
            '<header class="top"><a class="brand" href="/conversations">Review console</a>'
            '<nav class="nav">{links}</nav>'
            '<form class="signout" method="post" action="/logout">{csrf}'
            '<span class="who-am-i">{email}</span><button type="submit">Sign out</button></form></header>',
            links=links, csrf=csrf_field(csrf or ""), email=email,
        )
        script = Markup('<script src="/static/console.js" defer></script>')
    return render(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>{title} · Review console</title>'
        '<link rel="stylesheet" href="/static/console.css">{script}</head>'
        '<body>{header}<main>{body}</main></body></html>',
        title=title, script=script, header=header, body=body,
    )


def flash_box(message: Optional[str], kind: str = "error") -> Markup:
    """A notice above the content."""
    if not message:
        return Markup("")
    return render('<p class="flash flash--{kind}" role="status">{message}</p>', kind=kind, message=message)


# --------------------------------------------------------------------------- sign-in


def login_page(*, login_csrf: str, next_path: str, email: str = "", error: Optional[str] = None) -> Markup:
    """The sign-in form."""
    body = render(
        '<section class="login"><h1>Review console</h1>'
        '<p>Sign in with your support lead account.</p>{flash}'
        '<form method="post" action="/login" class="stack">{csrf}'
        '<input type="hidden" name="next" value="{next}">'
        '<label>E-mail<input type="email" name="email" value="{email}" autocomplete="username" required></label>'
        '<label>Password<input type="password" name="password" autocomplete="current-password" required></label>'
        '<button type="submit">Sign in</button></form></section>',
        flash=flash_box(error), csrf=csrf_field(login_csrf), next=next_path, email=email,
    )
    return layout("Sign in", body, email=None, csrf=None)


# --------------------------------------------------------------------------- conversation list


def _options(values: Iterable[Tuple[str, str]], selected: Optional[str], empty: str) -> Markup:
    parts = [render('<option value="">{label}</option>', label=empty)]
    for value, label in values:
        parts.append(render('<option value="{value}"{sel}>{label}</option>', value=value, label=label,
                            sel=Markup(" selected") if value == selected else ""))
    return join(parts)


def _checkbox(name: str, label: str, checked: bool) -> Markup:
    return render('<label class="check"><input type="checkbox" name="{name}" value="1"{checked}> {label}</label>',
                  name=name, label=label, checked=Markup(" checked") if checked else "")


def filter_form(filters: Filters, sort: str, per_page: int, choices: Dict[str, List[str]]) -> Markup:
    """The filter form of the conversation list."""
    f = filters
    channels = [(c, c) for c in choices["channels"]]
    intents = [(i, i) for i in choices["intents"]]
    operations = [(o, o) for o in choices["operations"]]
    tags = [(t, t) for t in choices["tags"]]
    if f.tag and f.tag not in choices["tags"]:
        tags.append((f.tag, f.tag))
    return render(
        '<form class="filters" method="get" action="/conversations" id="filters">'
        '<div class="filter-grid">'
        '<label>From<input type="date" name="from" value="{date_from}"></label>'
        '<label>To<input type="date" name="to" value="{date_to}"></label>'
        '<label>Channel<select name="channel">{channels}</select></label>'
        '<label>Intent<select name="intent">{intents}</select></label>'
        '<label>NLU confidence below<input type="number" name="confidence_below" min="0" max="1" '
        'step="0.05" value="{confidence}" placeholder="e.g. 0.6"></label>'
        '<label>Operation<select name="operation">{operations}</select></label>'
        '<label>Outcome<select name="outcome">{outcomes}</select></label>'
        '<label>Customer (account)<input type="text" name="customer" value="{customer}"></label>'
        '<label>Tag<select name="tag">{tags}</select></label>'
        '<label>Review status<select name="status">{statuses}</select></label>'
        '<label class="wide">Search messages<input type="search" name="q" value="{q}" '
        'placeholder="words a customer or the assistant wrote"></label>'
        '<label>Sort<select name="sort">{sorts}</select></label>'
        '</div><div class="filter-flags">{fallback}{handoff}{failed}</div>'
        '<input type="hidden" name="per_page" value="{per_page}">'
        '<div class="filter-actions"><button type="submit">Apply filters</button>'
        '<a class="button-link" href="/conversations">Reset</a></div></form>',
        date_from=f.date_from.isoformat() if f.date_from else "",
        date_to=f.date_to.isoformat() if f.date_to else "",
        channels=_options(channels, f.channel, "Any channel"),
        intents=_options(intents, f.intent, "Any intent"),
        confidence="" if f.confidence_below is None else f"{f.confidence_below:g}",
        operations=_options(operations, f.operation, "Any operation"),
        outcomes=_options([(conv.PERFORMED, "Performed"), (conv.REFUSED, "Refused")], f.outcome, "Any outcome"),
        customer=f.customer or "",
        tags=_options(tags, f.tag, "Any tag"),
        statuses=_options([(s, STATUS_LABELS[s]) for s in STATUSES], f.status, "Any status"),
        q=f.q or "",
        sorts=join(render('<option value="{key}"{sel}>{label}</option>', key=key, label=label,
                          sel=Markup(" selected") if key == sort else "")
                   for key, (label, _order) in SORTS.items()),
        fallback=_checkbox("fallback", "Fallback happened", f.fallback),
        handoff=_checkbox("handoff", "Hand-off or support request", f.handoff),
        failed=_checkbox("failed", "An action failed", f.failed),
        per_page=per_page,
    )


def badge(kind: str, label: str) -> Markup:
    """A small coloured label."""
    return render('<span class="badge badge--{kind}">{label}</span>', kind=kind, label=label)


def conversation_badges(summary: Dict[str, Any], operations: Sequence[Tuple[str, str]]) -> Markup:
    """Badges for what happened in a conversation."""
    parts: List[Markup] = []
    if summary["fallback_count"]:
        parts.append(badge("fallback", f"fallback ×{summary['fallback_count']}"))
    if summary["handoff_count"]:
        parts.append(badge("handoff", "hand-off"))
    if summary["support_request_count"]:
        parts.append(badge("support", "support request"))
    if summary["failed_action_count"]:
        parts.append(badge("failed", f"failed action ×{summary['failed_action_count']}"))
    if summary.get("form_interruption_count"):
        parts.append(badge("interrupted", f"form interrupted ×{summary['form_interruption_count']}"))
    for name, outcome in operations:
        parts.append(badge(outcome, f"{name} {outcome}"))
    return join(parts, " ")


def status_badge(status: str) -> Markup:
    """The review status as a badge."""
    return render('<span class="status status--{status}">{label}</span>', status=status,
                  label=STATUS_LABELS.get(status, status))


def verified_customer(summary: Dict[str, Any], empty: str = "not verified") -> str:
    """The verified customer and how: ``17 (via slack link)``, ``17 (via portal token)``."""
    customer = summary.get("customer_id")
    if not customer:
        return empty
    how = summary.get("verified_by")
    return f"{customer} (via {how})" if how else str(customer)


def verified_customer_fact(summary: Dict[str, Any]) -> Any:
    """The transcript's "Verified customer": a link-verified one links to the account's chat links."""
    text = verified_customer(summary)
    customer, how = summary.get("customer_id"), summary.get("verified_by") or ""
    if not customer or not how.endswith(" link"):
        return text
    return render('<a href="{href}" id="customer-links">{text}</a>', href=url("/links", [("account", customer)]),
                  text=text)


def _list_row(row: ConversationRow, back: str) -> Markup:
    s = row.summary
    short = s["sender_id"] if len(s["sender_id"]) <= 22 else s["sender_id"][:20] + "…"
    return render(
        '<tr data-sender="{sender}"><td class="conv"><a href="{href}" title="{sender}">{short}</a>'
        '<span class="snippet">{snippet}</span></td>'
        '<td>{started}</td><td>{last}</td><td>{channel}</td><td>{customer}</td>'
        '<td class="num">{messages}</td><td class="num">{confidence}</td>'
        '<td class="marks">{marks}</td><td>{tags}</td><td>{status}</td></tr>',
        sender=s["sender_id"], short=short,
        href=url("/conversation", [("id", s["sender_id"]), ("back", back)]),
        snippet=s.get("first_user_text") or "",
        started=fmt_time(s["started_at"]), last=fmt_time(s["last_event_at"]),
        channel=s.get("channel") or "-", customer=verified_customer(s, empty="-"),
        messages=s["user_message_count"], confidence=fmt_conf(s.get("min_confidence")),
        marks=conversation_badges(s, row.operations),
        tags=join((render('<span class="tag">{t}</span>', t=t) for t in row.tags), " "),
        status=status_badge(row.status),
    )


def _pager(base: str, params: List[Tuple[str, str]], page: int, pages: int) -> Markup:
    if pages <= 1:
        return Markup("")
    prev_link = render('<a rel="prev" href="{href}">← Previous</a>',
                       href=url(base, params + [("page", str(page - 1))])) if page > 1 else Markup("")
    next_link = render('<a rel="next" href="{href}">Next →</a>',
                       href=url(base, params + [("page", str(page + 1))])) if page < pages else Markup("")
    return render('<nav class="pager" aria-label="Pages">{prev} <span>Page {page} of {pages}</span> {next}</nav>',
                  prev=prev_link, next=next_link, page=page, pages=pages)


def retention_notice(retention_days: int) -> Markup:
    """What the conversation list says about how long conversations are kept."""
    return render('<p class="lede" id="retention">Conversations are kept for {days} days after their last '
                  'message, then removed with their tags and notes (<code>CONVERSATION_RETENTION_DAYS</code>).</p>',
                  days=retention_days)


def conversations_page(*, result: ConversationPage, filters: Filters, errors: List[str], sort: str,
                       choices: Dict[str, List[str]], email: str, csrf: str,
                       retention_days: Optional[int] = None) -> Markup:
    """The filtered, sorted, paginated conversation list (with the retention window when given)."""
    params = filters.query_items()
    if sort != DEFAULT_SORT:
        params.append(("sort", sort))
    if result.per_page != 25:
        params.append(("per_page", str(result.per_page)))
    back = url("/conversations", params + [("page", str(result.page))])
    rows = join(_list_row(row, back) for row in result.rows)
    if not result.rows:
        rows = Markup('<tr><td colspan="10" class="empty">No conversation matches these filters.</td></tr>')
    noun = "conversation" if result.total == 1 else "conversations"
    body = render(
        '<h1>Conversations</h1>{retention}{errors}{form}'
        '<div class="results-bar"><p class="count" id="result-count"><strong>{total}</strong> {noun}{filtered}</p>'
        '<p class="exports">Export these: <a href="{csv}" download>CSV</a> · <a href="{jsonl}" download>JSON Lines</a></p></div>'
        '<div class="table-wrap"><table class="list"><thead><tr><th>Conversation</th><th>Started</th>'
        '<th>Last activity</th><th>Channel</th><th>Customer</th><th class="num">Msgs</th>'
        '<th class="num">Lowest conf.</th><th>What happened</th><th>Tags</th><th>Status</th></tr></thead>'
        '<tbody>{rows}</tbody></table></div>{pager}',
        retention=retention_notice(retention_days) if retention_days else Markup(""),
        errors=join(flash_box(e) for e in errors),
        form=filter_form(filters, sort, result.per_page, choices),
        total=result.total, noun=noun, filtered=" match the filters" if filters.active else "",
        csv=url("/conversations/export.csv", params), jsonl=url("/conversations/export.jsonl", params),
        rows=rows, pager=_pager("/conversations", params, result.page, result.pages),
    )
    return layout("Conversations", body, email=email, csrf=csrf, active="conversations")


# --------------------------------------------------------------------------- transcript


def _marks(marks: Sequence[Mark]) -> Markup:
    icons = {"failed": "⚠ ", "fallback": "↺ ", "handoff": "☎ ", "support": "✉ ",
             "performed": "✔ ", "refused": "✖ ", "low": "", "other": ""}
    return join((render('<span class="mark mark--{kind}">{icon}{label}</span>', kind=m.kind,
                        icon=icons.get(m.kind, ""), label=m.label) for m in marks), " ")


def _item(item: Item) -> Markup:
    flagged = any(m.kind in ("failed", "fallback") for m in item.marks)
    classes = f"ev ev--{item.kind}" + (" ev--flagged" if flagged else "")
    when = render('<time>{t}</time>', t=fmt_time(item.at))
    if item.kind == "session":
        return render('<li class="{cls}" id="e{id}"><span>New session · {when}</span></li>',
                      cls=classes, id=item.event_id, when=fmt_time(item.at))
    if item.kind == conv.USER:
        ranking = join((render('<span>{n} {c}</span>', n=name, c=fmt_conf(c)) for name, c in item.ranking[1:]), " ")
        details = [render('intent <b class="intent">{i}</b>', i=item.intent or "-"),
                   render('confidence <b class="confidence">{c}</b>', c=fmt_conf(item.confidence))]
        if item.top_intent and item.top_intent != item.intent:
            details.append(render('best guess <b>{g}</b>', g=item.top_intent))
        if item.entities:
            details.append(render('entities {e}', e=", ".join(item.entities)))
        if item.channel:
            details.append(render('channel {c}', c=item.channel))
        if item.customer:
            details.append(render('verified customer <b>{c}</b>', c=item.customer))
        return render(
            '<li class="{cls}" id="e{id}"><div class="who">Customer {when}</div>'
            '<div class="bubble">{text}</div><div class="meta">{details}</div>'
            '<div class="ranking">{ranking}</div>{marks}</li>',
            cls=classes, id=item.event_id, when=when, text=item.text,
            details=join(details, " · "), ranking=Markup(f"also: {ranking}") if item.ranking[1:] else "",
            marks=_marks(item.marks),
        )
    if item.kind == conv.BOT:
        chips = join((render('<span class="chip">{b}</span>', b=b) for b in item.buttons), " ")
        return render(
            '<li class="{cls}" id="e{id}"><div class="who">Assistant {when}</div>'
            '<div class="bubble">{text}</div><div class="chips">{chips}</div>{marks}</li>',
            cls=classes, id=item.event_id, when=when, text=item.text or "(no text)", chips=chips,
            marks=_marks(item.marks),
        )
    if item.kind in (conv.ACTION, INTERRUPTED):
        label = "action" if item.kind == conv.ACTION else "form interrupted"
        return render(
            '<li class="{cls}" id="e{id}"><span class="label">{label}</span> <code class="action-name">{name}</code>'
            ' <span class="policy">{policy} · {conf}</span> {marks}</li>',
            cls=classes, id=item.event_id, label=label, name=item.name or "-",
            policy=item.policy or "no policy", conf=fmt_conf(item.confidence), marks=_marks(item.marks),
        )
    if item.kind == "slot":
        return render('<li class="{cls}" id="e{id}"><span class="label">slot</span> <code>{name}</code> = '
                      '<code>{value}</code> {marks}</li>', cls=classes, id=item.event_id, name=item.name,
                      value=item.value, marks=_marks(item.marks))
    if item.kind == "form":
        if item.name:
            return render('<li class="{cls}" id="e{id}"><span class="label">form</span> <code>{name}</code> '
                          'asks for its slots</li>', cls=classes, id=item.event_id, name=item.name)
        return render('<li class="{cls}" id="e{id}"><span class="label">form</span> done</li>',
                      cls=classes, id=item.event_id)
    return render('<li class="{cls}" id="e{id}"><span class="label">{name}</span> {marks}</li>',
                  cls=classes, id=item.event_id, name=item.name, marks=_marks(item.marks))


def _review_panel(t: Transcript, sender_id: str, csrf: str, known_tags: Sequence[str], back: str) -> Markup:
    sid = render('<input type="hidden" name="id" value="{v}"><input type="hidden" name="back" value="{b}">',
                 v=sender_id, b=back)
    status_note = (render('<p class="byline">Set by {by}, {at}</p>', by=t.status_by, at=fmt_time(t.status_at))
                   if t.status_by else Markup('<p class="byline">Not reviewed yet.</p>'))
    tags = join(
        render('<li class="tag-item"><span class="tag">{tag}</span> <span class="byline">{by}, {at}</span>'
               '<form method="post" action="/conversation/tags/remove" class="inline">{csrf}{sid}'
               '<input type="hidden" name="tag" value="{tag}">'
               '<button type="submit" class="link" aria-label="Remove tag {tag}">remove</button></form></li>',
               tag=tg["tag"], by=tg["by"], at=fmt_time(tg["added_at"]), csrf=csrf_field(csrf), sid=sid)
        for tg in t.tags
    )
    notes = join(
        render('<li><p class="note-body">{body}</p><p class="byline">{by}, {at}</p></li>',
               body=n["body"], by=n["by"], at=fmt_time(n["created_at"]))
        for n in t.notes
    )
    log = join(
        render('<li><span class="byline">{at}</span> {by}: {action} {detail}</li>',
               at=fmt_time(a["at"]), by=a["by"], action=a["action"].replace("_", " "), detail=a["detail"])
        for a in t.activity
    )
    return render(
        '<aside class="review-panel">'
        '<section><h2>Review status</h2><form method="post" action="/conversation/status" class="row">{csrf}{sid}'
        '<select name="status" aria-label="Review status">{statuses}</select>'
        '<button type="submit">Save status</button></form>{status_note}</section>'
        '<section><h2>Tags</h2><ul class="tags">{tags}</ul>'
        '<form method="post" action="/conversation/tags" class="row">{csrf}{sid}'
        '<input type="text" name="tag" list="known-tags" placeholder="new tag" aria-label="Tag" required maxlength="32">'
        '<datalist id="known-tags">{known}</datalist><button type="submit">Add tag</button></form></section>'
        '<section><h2>Notes</h2><form method="post" action="/conversation/notes" class="stack">{csrf}{sid}'
        '<textarea name="body" rows="3" aria-label="Note" required maxlength="4000"></textarea>'
        '<button type="submit">Add note</button></form><ul class="notes">{notes}</ul></section>'
        '<section><h2>Activity</h2><ul class="activity">{log}</ul></section></aside>',
        csrf=csrf_field(csrf), sid=sid, status_note=status_note,
        statuses=join(render('<option value="{s}"{sel}>{label}</option>', s=s, label=STATUS_LABELS[s],
                             sel=Markup(" selected") if s == t.status else "") for s in STATUSES),
        tags=tags or Markup('<li class="byline">No tags.</li>'),
        known=join(render('<option value="{t}">', t=k) for k in known_tags),
        notes=notes, log=log or Markup('<li class="byline">Nothing yet.</li>'),
    )


def transcript_page(*, t: Transcript, back: str, csrf: str, email: str, known_tags: Sequence[str],
                    flash: Optional[str] = None, error: Optional[str] = None,
                    support: Markup = Markup("")) -> Markup:
    """One conversation: facts, its support requests (``support``), timeline, review panel."""
    s = t.summary
    facts = [
        ("Channel", s.get("channel") or "-"), ("Verified customer", verified_customer_fact(s)),
        ("Started", fmt_time(s["started_at"])), ("Last activity", fmt_time(s["last_event_at"])),
        ("Customer messages", s["user_message_count"]), ("Lowest NLU confidence", fmt_conf(s.get("min_confidence"))),
        ("Sessions", s["session_count"]),
    ]
    body = render(
        '<p><a href="{back}">← Back to the list</a></p>{flash}'
        '<h1>Conversation <code class="sender">{sender}</code></h1>'
        '<dl class="facts">{facts}</dl><p class="badges">{badges} {status}</p>{support}'
        '<div class="transcript-layout"><section class="transcript" aria-label="Transcript">'
        '{truncated}<ol class="timeline">{items}</ol></section>{panel}</div>',
        back=back, flash=join([flash_box(flash, "ok"), flash_box(error)]), sender=s["sender_id"], support=support,
        facts=join(render('<div><dt>{k}</dt><dd>{v}</dd></div>', k=k, v=v) for k, v in facts),
        badges=conversation_badges(s, t.operations), status=status_badge(t.status),
        truncated=flash_box("Only the first 5000 events are shown.", "info") if t.truncated else "",
        items=join(_item(item) for item in t.items),
        panel=_review_panel(t, s["sender_id"], csrf, known_tags, back),
    )
    return layout("Conversation", body, email=email, csrf=csrf, active="conversations")


# --------------------------------------------------------------------------- NLU inbox


def inbox_page(*, result: InboxPage, view: str, threshold: float, intents: Sequence[str], counts: Dict[str, int],
               csrf: str, email: str, flash: Optional[str] = None) -> Markup:
    """Messages to confirm or correct, and the labelled ones."""
    base_params = [("view", view), ("threshold", f"{threshold:g}")]
    tabs = join(
        render('<a href="{href}"{cur}>{label} ({n})</a>', href=url("/nlu-inbox", [("view", v), ("threshold", f"{threshold:g}")]),
               label=v.capitalize(), n=counts.get(v, 0), cur=Markup(' aria-current="page"') if v == view else "")
        for v in INBOX_VIEWS
    )
    rows = []
    for item in result.items:
        predicted = item["top_intent"]
        current = item["label"] or predicted
        fallback = item["intent"] == conv.FALLBACK_INTENT
        confirm = Markup("")
        if predicted and view == PENDING:
            confirm = render(
                '<form method="post" action="/nlu-inbox/label" class="inline">{csrf}'
                '<input type="hidden" name="event_id" value="{eid}"><input type="hidden" name="label" value="{p}">'
                '<input type="hidden" name="back" value="{back}">'
                '<button type="submit" class="confirm">Confirm {p}</button></form>',
                csrf=csrf_field(csrf), eid=item["event_id"], p=predicted, back=url("/nlu-inbox", base_params))
        labelled = (render('<p class="byline">{outcome} as <b>{label}</b> by {by}, {at}</p>', outcome=item["outcome"].capitalize(),
                           label=item["label"], by=item["labelled_by"], at=fmt_time(item["labelled_at"]))
                    if item["label"] else Markup(""))
        rows.append(render(
            '<tr data-event="{eid}"><td><p class="message">{text}</p><p class="byline">{at} · '
            '<a href="{conv}">open conversation</a></p></td>'
            '<td>{fallback}<b>{predicted}</b> <span class="confidence">{conf}</span></td>'
            '<td>{confirm}<form method="post" action="/nlu-inbox/label" class="row">{csrf}'
            '<input type="hidden" name="event_id" value="{eid}"><input type="hidden" name="back" value="{back}">'
            '<select name="label" aria-label="Intent">{options}</select>'
            '<button type="submit">Save label</button></form>{labelled}</td></tr>',
            eid=item["event_id"], text=item["text"], at=fmt_time(item["timestamp"]),
            conv=url("/conversation", [("id", item["sender_id"])]) + f"#e{item['event_id']}",
            fallback=badge("fallback", "fallback") if fallback else "",
            predicted=predicted or "-", conf=fmt_conf(item["confidence"]), confirm=confirm,
            csrf=csrf_field(csrf), back=url("/nlu-inbox", base_params),
            options=join(render('<option value="{i}"{sel}>{i}</option>', i=i,
                                sel=Markup(" selected") if i == current else "") for i in intents),
            labelled=labelled,
        ))
    if not rows:
        rows.append(Markup('<tr><td colspan="3" class="empty">Nothing here.</td></tr>'))
    body = render(
        '<h1>NLU inbox</h1>{flash}<p class="lede">Customer messages the assistant was unsure about: NLU '
        'confidence below the threshold, or not understood at all (fallback). Confirm the predicted intent '
        'or correct it; corrected messages export as Rasa NLU training data.</p>'
        '<nav class="tabs">{tabs}</nav>'
        '<form method="get" action="/nlu-inbox" class="row"><input type="hidden" name="view" value="{view}">'
        '<label>Confidence below <input type="number" name="threshold" min="0.05" max="1" step="0.05" value="{threshold}"></label>'
        '<button type="submit">Show</button></form>'
        '<p class="exports">Export as Rasa NLU YAML: <a href="/nlu-inbox/export.yml" download>corrected examples</a> · '
        '<a href="/nlu-inbox/export.yml?include=confirmed" download>corrected and confirmed</a></p>'
        '<div class="table-wrap"><table class="inbox"><thead><tr><th>Message</th><th>Predicted</th><th>Label</th></tr></thead>'
        '<tbody>{rows}</tbody></table></div>{pager}',
        flash=flash_box(flash, "ok") if flash else "", tabs=tabs, view=view, threshold=f"{threshold:g}",
        rows=join(rows), pager=_pager("/nlu-inbox", base_params, result.page, result.pages),
    )
    return layout("NLU inbox", body, email=email, csrf=csrf, active="inbox")


# --------------------------------------------------------------------------- dashboard


def _chart(kind: str, title: str, series: Any) -> Markup:
    return render('<div class="chart" data-chart="{kind}" data-title="{title}" data-series="{series}" '
                  'role="img" aria-label="{title}"></div>', kind=kind, title=title,
                  series=json.dumps(series, separators=(",", ":")))


def dashboard_page(*, d: Dashboard, csrf: str, email: str) -> Markup:
    """Figures and charts for a date range."""
    per_day = [{"label": x["day"], "value": x["conversations"], "extra": x["handed_off"]} for x in d.per_day]
    intents = [{"label": name, "value": n} for name, n in d.top_intents]
    operations = [{"label": o["name"], "performed": o["performed"], "refused": o["refused"]} for o in d.operations]
    day_rows = join(render('<tr><td>{day}</td><td class="num">{n}</td><td class="num">{h}</td><td class="num">{f}</td></tr>',
                           day=x["day"], n=x["conversations"], h=x["handed_off"], f=x["with_fallback"])
                    for x in d.per_day if x["conversations"])
    intent_rows = join(render('<tr><td>{i}</td><td class="num">{n}</td></tr>', i=i, n=n) for i, n in d.top_intents)
    op_rows = join(render('<tr><td>{name}</td><td class="num">{p}</td><td class="num">{r}</td></tr>',
                          name=o["name"], p=o["performed"], r=o["refused"]) for o in d.operations)
    body = render(
        '<h1>Dashboard</h1><form method="get" action="/dashboard" class="row">'
        '<label>From <input type="date" name="from" value="{f}"></label>'
        '<label>To <input type="date" name="to" value="{t}"></label><button type="submit">Show</button></form>'
        '<div class="cards">'
        '<div class="card"><span class="figure" id="stat-conversations">{total}</span><span>conversations</span></div>'
        '<div class="card"><span class="figure" id="stat-containment">{containment}</span>'
        '<span>containment (no hand-off or support request)</span></div>'
        '<div class="card"><span class="figure" id="stat-fallback">{fallback}</span>'
        '<span>of conversations had a fallback ({msg_fallback} of customer messages)</span></div>'
        '<div class="card"><span class="figure">{handed}</span><span>handed to a person</span></div>'
        '<div class="card"><a class="figure" id="stat-failed" href="{failed_link}">{failed}</a>'
        '<span>had a failed action (error, timeout; form interruptions are not failures)</span></div></div>'
        '<section class="panel"><h2>Conversations per day</h2>{c1}'
        '<details><summary>Figures</summary><table><thead><tr><th>Day (UTC)</th><th class="num">Conversations</th>'
        '<th class="num">Handed off</th><th class="num">With fallback</th></tr></thead><tbody>{day_rows}</tbody></table></details></section>'
        '<div class="two"><section class="panel"><h2>Top intents</h2>{c2}'
        '<details><summary>Figures</summary><table><tbody>{intent_rows}</tbody></table></details></section>'
        '<section class="panel"><h2>Operations performed and refused</h2>{c3}{no_ops}'
        '<details><summary>Figures</summary><table><thead><tr><th>Operation</th><th class="num">Performed</th>'
        '<th class="num">Refused</th></tr></thead><tbody>{op_rows}</tbody></table></details></section></div>',
        f=d.date_from.isoformat(), t=d.date_to.isoformat(), total=d.conversations,
        containment=fmt_pct(d.containment), fallback=fmt_pct(d.fallback_rate),
        msg_fallback=fmt_pct(d.message_fallback_rate), handed=d.conversations - d.contained,
        failed=d.with_failure,
        failed_link=url("/conversations", [("failed", "1"), ("from", d.date_from.isoformat()),
                                           ("to", d.date_to.isoformat())]),
        c1=_chart("columns", "Conversations per day", per_day),
        c2=_chart("bars", "Top intents (customer messages)", intents),
        c3=_chart("stacked", "Operations (conversations)", operations) if operations else "",
        no_ops=Markup('<p class="byline">No operation was marked in this period.</p>') if not operations else "",
        day_rows=day_rows, intent_rows=intent_rows, op_rows=op_rows,
    )
    return layout("Dashboard", body, email=email, csrf=csrf, active="dashboard")


def error_page(status: int, message: str, *, email: Optional[str] = None, csrf: Optional[str] = None) -> Markup:
    """A plain error page."""
    body = render('<h1>{status}</h1><p>{message}</p><p><a href="/conversations">Back to the conversations</a></p>',
                  status=status, message=message)
    return layout(str(status), body, email=email, csrf=csrf)


# --------------------------------------------------------------------------- admin: leads


def _lead_row(row: Dict[str, Any], csrf: str) -> Markup:
    if row["role"] != "lead":
        actions = Markup('<span class="byline">managed from the command line</span>')
    else:
        toggle = "enable" if row["disabled"] else "disable"
        actions = render(
            '<form method="post" action="/admin/leads/{toggle}" class="row">{csrf}'
            '<input type="hidden" name="email" value="{email}"><button type="submit">{label}</button></form>'
            '<form method="post" action="/admin/leads/reset-password" class="row">{csrf}'
            '<input type="hidden" name="email" value="{email}">'
            '<label>New password <input type="password" name="password" autocomplete="new-password" '
            'minlength="12" required></label><button type="submit">Reset password</button></form>',
            toggle=toggle, label="Re-enable" if row["disabled"] else "Disable", csrf=csrf_field(csrf),
            email=row["email"])
    return render('<tr data-lead="{email}"><td>{email}</td><td>{role}</td><td>{state}</td><td>{created}</td>'
                  '<td>{actions}</td></tr>', email=row["email"], role=row["role"],
                  state="disabled" if row["disabled"] else "active", created=fmt_time(row["created_at"]),
                  actions=actions)


def leads_page(*, leads: Sequence[Dict[str, Any]], audit: Sequence[Dict[str, Any]], csrf: str, email: str,
               flash: Optional[str] = None, error: Optional[str] = None) -> Markup:
    """Admins: the leads, forms to manage them, and the audit trail of admin actions."""
    audit_rows = join(render('<tr class="audit"><td>{at}</td><td>{actor}</td><td>{what}</td><td>{whom}</td></tr>',
                             at=fmt_time(a["at"]), actor=a["actor"], what=ACTION_LABELS.get(a["action"], a["action"]),
                             whom=a["target_email"]) for a in audit)
    body = render(
        '<h1>Leads</h1>{flash}{error}'
        '<section class="panel"><h2>Add a lead</h2>'
        '<form method="post" action="/admin/leads/create" class="row">{csrf}'
        '<label>E-mail <input type="email" name="email" required></label>'
        '<label>Password <input type="password" name="password" autocomplete="new-password" minlength="12" '
        'required></label><button type="submit">Create lead</button></form></section>'
        '<div class="table-wrap"><table class="list"><thead><tr><th>E-mail</th><th>Role</th><th>State</th>'
        '<th>Created</th><th></th></tr></thead><tbody>{rows}</tbody></table></div>'
        '<section class="panel"><h2>Audit trail</h2><table><thead><tr><th>When</th><th>Who</th><th>What</th>'
        '<th>Whom</th></tr></thead><tbody>{audit_rows}</tbody></table></section>',
        flash=flash_box(flash, "ok"), error=flash_box(error), csrf=csrf_field(csrf),
        rows=join(_lead_row(row, csrf) for row in leads), audit_rows=audit_rows,
    )
    return layout("Leads", body, email=email, csrf=csrf, active="leads")
