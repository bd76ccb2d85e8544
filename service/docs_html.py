"""Render the OpenAPI document as one self-contained HTML page (no scripts, no CDN)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
.op{border:1px solid #ddd;border-radius:6px;margin:1.2em 0;padding:.2em 1em 1em}
.method{display:inline-block;min-width:4em;font-weight:bold;color:#fff;border-radius:4px;padding:0 .5em;
text-align:center}.get{background:#2a7ab0}.post{background:#3a8a3a}
code,pre{background:#f5f5f5;border-radius:4px}pre{padding:.6em;overflow-x:auto;font-size:13px}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.2em .6em;text-align:left;
vertical-align:top}nav a{margin-right:1em}
"""


def _resolve(spec: dict, node: Any, expanding: frozenset[str] = frozenset()) -> Any:
    """Inline every local $ref (the page shows schemas whole); a recursive one stays a $ref inside itself."""
    if isinstance(node, dict):
        if "$ref" in node:
            ref = node["$ref"]
            if ref in expanding:
                return dict(node)
            target: Any = spec
            for part in ref.lstrip("#/").split("/"):
                target = target[part]
            return _resolve(spec, target, expanding | {ref})
        return {k: _resolve(spec, v, expanding) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(spec, v, expanding) for v in node]
    return node


def _type(schema: dict) -> str:
    text = schema.get("type", "any")
    if text == "array":
        text = f"array of {_type(schema.get('items', {}))}"
    if "format" in schema:
        text += f" ({schema['format']})"
    if "enum" in schema:
        text += ": " + " | ".join(map(str, schema["enum"]))
    if "minimum" in schema or "maximum" in schema:
        text += f", {schema.get('minimum', '')}..{schema.get('maximum', '')}"
    if "maxLength" in schema:
        text += f", {schema.get('minLength', 0)}..{schema['maxLength']} chars"
    if schema.get("nullable"):
        text += ", or null"
    return text


def _rows(schema: dict, prefix: str = "") -> list[str]:
    """One table row per field, nested objects and arrays of objects flattened as a.b / a[].b."""
    rows = []
    required = set(schema.get("required", []))
    for name, sub in schema.get("properties", {}).items():
        rows.append(
            f"<tr><td><code>{escape(prefix + name)}</code></td><td>{escape(_type(sub))}</td>"
            f"<td>{'yes' if name in required else 'no'}</td><td>{escape(sub.get('description', ''))}</td></tr>"
        )
        if sub.get("type") == "object":
            rows += _rows(sub, f"{prefix}{name}.")
        elif sub.get("type") == "array" and sub.get("items", {}).get("type") == "object":
            rows += _rows(sub["items"], f"{prefix}{name}[].")
    return rows


def _fields(schema: dict) -> str:
    rows = _rows(schema)
    if not rows:
        return _pre(schema)
    return (
        "<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>" + "".join(rows) + "</table>"
    )


def _pre(value: Any) -> str:
    return f"<pre>{escape(json.dumps(value, indent=2))}</pre>"


def _operation(spec: dict, path: str, method: str, op: dict) -> str:
    op = _resolve(spec, op)
    out = [
        f'<div class="op" id="{escape(op.get("operationId", ""))}">',
        f'<h3><span class="method {method}">{method.upper()}</span> <code>{escape(path)}</code></h3>',
        f"<p><b>{escape(op.get('summary', ''))}</b></p>",
        f"<p>{escape(op.get('description', ''))}</p>",
    ]
    params = op.get("parameters", [])
    if params:
        out.append("<table><tr><th>parameter</th><th>in</th><th>required</th><th>schema</th><th>description</th></tr>")
        for p in params:
            out.append(
                f"<tr><td><code>{escape(p['name'])}</code></td><td>{escape(p['in'])}</td>"
                f"<td>{'yes' if p.get('required') else 'no'}</td>"
                f"<td><code>{escape(json.dumps(p.get('schema', {})))}</code></td>"
                f"<td>{escape(p.get('description', ''))}</td></tr>"
            )
        out.append("</table>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body:
        out.append("<p>Request body (JSON object; other fields are rejected):</p>" + _fields(body.get("schema", {})))
        if "example" in body:
            out.append("<p>Example:</p>" + _pre(body["example"]))
    out.append("<table><tr><th>status</th><th>meaning</th></tr>")
    for status, response in op.get("responses", {}).items():
        out.append(f"<tr><td>{escape(status)}</td><td>{escape(response.get('description', ''))}</td></tr>")
    out.append("</table>")
    for status, response in op.get("responses", {}).items():
        content = response.get("content", {}).get("application/json", {})
        if status.startswith("2") and "schema" in content:
            out.append(f"<p>{escape(status)} response:</p>{_fields(content['schema'])}")
    out.append("</div>")
    return "\n".join(out)


def render(spec: dict) -> str:
    info = spec.get("info", {})
    base = spec.get("servers", [{}])[0].get("url", "")
    ops = [
        (path, method, op)
        for path, item in spec.get("paths", {}).items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    nav = " ".join(
        f'<a href="#{escape(op.get("operationId", ""))}">{escape(method.upper())} {escape(path)}</a>'
        for path, method, op in ops
    )
    errors = spec.get("x-error-codes", [])
    error_rows = "".join(
        f"<tr><td>{e['status']}</td><td><code>{escape(e['code'])}</code></td>"
        f"<td>{escape(e.get('sqlstate') or '')}</td><td>{escape(e['description'])}</td></tr>"
        for e in errors
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(info.get("title", "API"))}</title>
<style>{_STYLE}</style></head><body>
<h1>{escape(info.get("title", ""))} <small>{escape(info.get("version", ""))}</small></h1>
<p>{escape(info.get("description", ""))}</p>
<p>Base URL: <code>{escape(base)}</code> &middot; machine-readable: <a href="openapi.json">openapi.json</a></p>
<nav>{nav}</nav>
<h2>Endpoints</h2>
{"".join(_operation(spec, path, method, op) for path, method, op in ops)}
<h2>Errors</h2>
<p>Every error body is <code>{{"error": {{"code", "message", "details"}}}}</code>.</p>
<table><tr><th>HTTP</th><th>code</th><th>SQLSTATE</th><th>when</th></tr>{error_rows}</table>
</body></html>
"""
