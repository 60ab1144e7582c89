"""Sphinx extension for the medgap book: one copy of each script per page.

With jupyter-book 1.0.4, sphinx-book-theme and sphinx-thebe 0.3.1, some
extension set-up runs twice, so the inline ``const THEBE_JS_URL = ...`` script
appears twice in every page's ``<head>``. The second copy throws "Identifier
'THEBE_JS_URL' has already been declared" in the browser console. This
extension drops exact duplicates from the page's script list.
"""

from __future__ import annotations

from typing import Any


def _script_identity(script: Any) -> tuple:
    # Inline scripts have a filename of None or "", depending on who added them.
    filename = str(getattr(script, "filename", script) or "")
    attributes = getattr(script, "attributes", {}) or {}
    return (filename, tuple(sorted((key, str(value)) for key, value in attributes.items())))


def remove_duplicate_scripts(app: Any, pagename: str, templatename: str, context: dict, doctree: Any) -> None:
    """Keep the first of each identical script in ``context["script_files"]``."""
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        identity = _script_identity(script)
        if identity not in seen:
            seen.add(identity)
            unique.append(script)
    scripts[:] = unique


def setup(app: Any) -> dict:
    # Early, because html-page-context stops at the first handler that
    # returns a template name; the duplicates exist before the event fires.
    app.connect("html-page-context", remove_duplicate_scripts, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
