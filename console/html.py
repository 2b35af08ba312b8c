"""A minimal HTML template helper: everything is escaped unless it is :class:`Markup`.

Templates are ``str.format`` strings with named fields. Values are escaped
(``html.escape`` with quotes), except :class:`Markup` values, which are HTML
already built by these helpers. There are no inline scripts or styles (the
Content-Security-Policy forbids them), so templates contain no literal braces.
"""

from __future__ import annotations

import html
from typing import Any, Iterable
from urllib.parse import urlencode


class Markup(str):
    """A string that is safe HTML."""


def escape(value: Any) -> Markup:
    """HTML-escape ``value`` (None becomes empty); :class:`Markup` passes unchanged."""
    if isinstance(value, Markup):
        return value
    if value is None:
        return Markup("")
    return Markup(html.escape(str(value), quote=True))


def render(template: str, **values: Any) -> Markup:
    """Fill ``template``'s named fields with escaped ``values``."""
    return Markup(template.format(**{name: escape(value) for name, value in values.items()}))


def join(parts: Iterable[Any], separator: str = "") -> Markup:
    """Concatenate escaped ``parts``."""
    return Markup(separator.join(escape(part) for part in parts))


def url(path: str, params: Iterable[Any] = ()) -> str:
    """``path`` with query parameters (pairs; empty values are left out)."""
    items = [(k, v) for k, v in params if v not in (None, "")]
    return f"{path}?{urlencode(items)}" if items else path
