"""The report as one self-contained HTML page: inline SVG charts, no scripts, no fetches.

Operators mail it, attach it to an incident or open it offline; so nothing is loaded from
anywhere and the page shows the same figures as the terminal and JSON forms.
"""

from __future__ import annotations

from html import escape

from tiergate.report._figures import Distribution, Report

_BAR_HEIGHT, _GAP, _LABEL_WIDTH, _CHART_WIDTH = 22, 6, 220, 360
_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330;max-width:1100px}
h1{margin-bottom:.2rem} .sub{color:#5a6372;margin-top:0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:1rem;margin:1.5rem 0}
.card{border:1px solid #d8dde6;border-radius:8px;padding:.8rem 1rem}
.card .v{font-size:1.6rem;font-weight:600} .card .k{color:#5a6372;font-size:.85rem}
section{margin:1.5rem 0} table{border-collapse:collapse} td,th{padding:.3rem .7rem;border-bottom:1px solid #e5e8ee;text-align:left}
svg text{font-size:12px;fill:#1d2330} .empty{color:#5a6372}
"""


def _number(value: float | None, unit: str = "") -> str:
    if value is None:
        return "–"
    if unit == "$":
        return f"${value:.5f}"
    if unit == "%":
        return f"{value * 100:.1f}%"
    if unit == "s":
        return f"{value:.3f} s"
    return f"{value:g}"


def bar_chart(title: str, items: list[tuple[str, float]], unit: str = "") -> str:
    """A horizontal bar chart as inline SVG (one bar per item, labelled with its value)."""
    if not items:
        return f"<section><h3>{escape(title)}</h3><p class='empty'>none</p></section>"
    top = max(value for _, value in items) or 1.0
    height = len(items) * (_BAR_HEIGHT + _GAP)
    width = _LABEL_WIDTH + _CHART_WIDTH + 110
    rows = []
    for index, (label, value) in enumerate(items):
        y = index * (_BAR_HEIGHT + _GAP)
        length = max(1.0, _CHART_WIDTH * value / top)
        rows.append(
            f'<text x="{_LABEL_WIDTH - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{_LABEL_WIDTH}" y="{y}" width="{length:.1f}" height="{_BAR_HEIGHT}" '
            f'fill="#3b6fd8" rx="3"><title>{escape(label)}: {escape(_number(value, unit))}</title></rect>'
            f'<text x="{_LABEL_WIDTH + length + 6:.1f}" y="{y + 15}">{escape(_number(value, unit))}</text>'
        )
    svg = (
        f'<svg role="img" aria-label="{escape(title)}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg">{"".join(rows)}</svg>'
    )
    return f"<section><h3>{escape(title)}</h3>{svg}</section>"


def _percentiles(d: Distribution, *keys: str) -> list[tuple[str, float]]:
    return [(key, value) for key in keys if (value := getattr(d, key)) is not None]


def _card(label: str, value: str) -> str:
    return f"<div class='card'><div class='v'>{escape(value)}</div><div class='k'>{escape(label)}</div></div>"


def render_html(report: Report) -> str:
    """The whole page for ``report``."""
    scope = f"agent {report.agent}" if report.agent else "all agents"
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>tiergate report</title><style>{_STYLE}</style></head><body>"
        f"<h1>tiergate operator report</h1><p class='sub'>{escape(scope)}, runs started "
        f"{escape(report.since.isoformat())} – {escape(report.until.isoformat())}</p>"
        f"<div class='grid'>{_cards(report)}</div>{''.join(_charts(report))}"
        f"<section><h3>Pending approvals</h3>{_pending(report)}</section></body></html>"
    )


def _cards(report: Report) -> str:
    return "".join(
        [
            _card("runs (finished / running)", f"{report.finished} / {report.running}"),
            _card("success rate", _number(report.success_rate, "%")),
            _card("cost per completed task, p50", _number(report.cost_per_completed_task.p50, "$")),
            _card("cost per completed task, p95", _number(report.cost_per_completed_task.p95, "$")),
            _card("total cost", _number(report.cost_usd_total, "$")),
            _card("run latency p95 (work)", _number(report.latency_seconds.p95, "s")),
            _card("pending approvals", str(len(report.pending_approvals))),
        ]
    )


def _counts(counts: dict[str, int]) -> list[tuple[str, float]]:
    return [(k, float(v)) for k, v in counts.items()]


def _charts(report: Report) -> list[str]:
    return [
        bar_chart("Runs by outcome", _counts(report.outcomes)),
        bar_chart(
            "Cost per completed task (USD)",
            _percentiles(report.cost_per_completed_task, "p50", "p95", "mean"),
            "$",
        ),
        bar_chart(
            "Tokens per completed task",
            _percentiles(report.tokens_per_completed_task, "p50", "p95", "mean"),
        ),
        bar_chart(
            "Tool calls per task", _percentiles(report.tool_calls_per_task, "p50", "p95", "mean")
        ),
        bar_chart(
            "Run latency, work time (s)",
            _percentiles(report.latency_seconds, "p50", "p95", "p99"),
            "s",
        ),
        bar_chart(
            "Run latency, elapsed incl. approval waits (s)",
            _percentiles(report.elapsed_seconds, "p50", "p95", "p99"),
            "s",
        ),
        bar_chart("Policy denials by policy", _counts(report.policy_denials)),
        bar_chart("Blocked actions by policy or cause", _counts(report.blocked_actions)),
        bar_chart("Escalations", _counts(report.escalations)),
        bar_chart("Budget stops by limit", _counts(report.budget_stops)),
        bar_chart("Log-only policies: decisions they would flip", _counts(report.log_only_flips)),
    ]


def _pending(report: Report) -> str:
    rows = "".join(
        f"<tr><td>{escape(p.workflow_id)}</td><td>{escape(p.agent)}</td><td>{p.step}</td>"
        f"<td>{escape(p.tool)}</td><td>{p.tier}</td><td>{len(p.approved_by)}/{p.required}</td>"
        f"<td>{_number(p.age_seconds, 's')}</td><td>{'yes' if p.escalated else 'no'}</td></tr>"
        for p in report.pending_approvals
    )
    if not rows:
        return "<p class='empty'>none</p>"
    return (
        "<table><tr><th>run</th><th>agent</th><th>step</th><th>tool</th><th>tier</th>"
        f"<th>approvals</th><th>age</th><th>overdue</th></tr>{rows}</table>"
    )
