"""The headline table of BENCHMARKS.md, rendered from bench/results/*.json.

`make bench` runs every benchmark, then this. Each row is a figure, its baseline from the
same run, their ratio and whether the target holds; a missing result file is a row that
says so, never a number.

    python bench/_table.py [--results bench/results]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

Row = tuple[str, str, str, str, str, str, str]
HEADER: Row = ("benchmark", "measure", "tiergate", "baseline", "ratio", "target", "result")


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _overhead(r: dict[str, Any]) -> list[Row]:
    rows = _overhead_path(r, "openai provider, local model server", 0.8)
    if "scripted" in r:
        rows += _overhead_path(r["scripted"], "scripted model in-process", 0.95)
    return rows


def _overhead_path(r: dict[str, Any], path: str, target: float) -> list[Row]:
    ratio = r["ratio_tiergate_over_bare"]
    cpu = r["cpu_ms_per_run"]
    t_cpu = cpu["tiergate"]["worker"] + cpu["tiergate"]["server"]
    b_cpu = cpu["bare"]["worker"] + cpu["bare"]["server"]
    name = "overhead"
    paired = r["median_paired_ratio"]
    return [
        (
            name,
            f"runs/s, 5-step agent, {path}; median of the paired rounds",
            f"{r['tiergate_runs_per_second']}",
            f"{r['bare_runs_per_second']} (bare Temporal)",
            f"{ratio:.3f}; paired {paired:.3f}",
            f"≥ {target}",
            _verdict(paired >= target) + (f" by {target - paired:.2f}" if paired < target else ""),
        ),
        (
            name,
            f"CPU ms/run (worker + server), {path}",
            f"{t_cpu:.0f}",
            f"{b_cpu:.0f}",
            f"{b_cpu / t_cpu:.3f}",
            "",
            "",
        ),
    ]


def _gate(r: dict[str, Any]) -> list[Row]:
    gate, bare = r["gate"], r["bare_cedar"]
    ratio = r["ratio_p99"]  # the median of the rounds' unrounded ratios: 1.502 is a miss
    low, high = r["ratio_p99_range"]
    rows: list[Row] = [
        (
            "gate latency",
            f"p99 µs per decision, median of {len(r['rounds'])} rounds",
            f"{gate['p99_us']}",
            f"{bare['p99_us']} (bare Cedar)",
            f"{ratio:.3f} ({low:.2f}–{high:.2f})",
            "≤ 1.5",
            _verdict(ratio <= 1.5) + (f" by {ratio - 1.5:.3f}" if ratio > 1.5 else ""),
        )
    ]
    logged = r.get("log_only")
    if logged is not None:
        low, high = logged["ratio_p99_range"]
        rows.append(
            (
                "gate latency, log-only",
                "p99 µs, one log-only policy that would flip the call, vs the demo's gate",
                f"{logged['with_log_only_p99_us']}",
                f"{logged['without_p99_us']} (no log-only policy)",
                f"{logged['ratio_p99']:.3f} ({low:.2f}–{high:.2f})",
                "measured",
                "reported",
            )
        )
    session = r.get("session")
    if session is not None:
        low, high = session["ratio_p99_range"]
        rows.append(
            (
                "gate latency, session",
                "p99 µs, session-reading policies 20 calls in, vs the demo's gate",
                f"{session['with_session_p99_us']}",
                f"{session['without_p99_us']} (no session)",
                f"{session['ratio_p99']:.3f} ({low:.2f}–{high:.2f})",
                "measured",
                "reported",
            )
        )
    return rows


def _approval(r: dict[str, Any]) -> list[Row]:
    b = r["baseline_bare_update"]
    rows: list[Row] = []
    for label, key, ratio in (
        ("approval latency", "tiergate", "ratio_p50"),
        ("approval latency, passkey", "tiergate_passkey", "ratio_p50_passkey"),
    ):
        if key not in r:
            continue
        t = r[key]
        rows.append(
            (
                label,
                "p50 ms, approve → tool started",
                f"{t['p50_ms']}",
                f"{b['p50_ms']} (bare update)",
                f"{r[ratio]:.2f}",
                "p50 ≤ 50 ms",
                _verdict(t["p50_ms"] <= 50),
            )
        )
    return rows


def _waiting(r: dict[str, Any]) -> list[Row]:
    rss = r["worker_rss_mb"]
    ratio = r["ratio_drain_over_baseline"]
    runs = r["runs_waiting"]
    return [
        (
            f"waiting at scale ({runs:,} runs)",
            "worker RSS MB while waiting",
            f"{rss['while_waiting']}",
            f"{rss['idle']} (idle worker)",
            f"{rss['while_waiting'] / rss['idle']:.2f}",
            "≤ 300 MB",
            _verdict(rss["while_waiting"] <= 300),
        ),
        (
            f"waiting at scale ({runs:,} runs)",
            "drain runs/s after approving all",
            f"{r['drain_runs_per_second']}",
            f"{r['baseline_runs_per_second']} (same agent, no approval)",
            f"{ratio:.2f}",
            "≥ 0.8, all drained",
            # A fast drain that left runs behind is a miss, not a rate.
            _verdict(ratio >= 0.8 and not r.get("runs_not_drained")),
        ),
    ]


def _growth(r: dict[str, Any]) -> list[Row]:
    first, last = r["runs"][0], r["runs"][-1]
    span = f"{last['steps']} vs {first['steps']} steps"
    rows: list[Row] = []
    for key, measure in (
        ("cpu_ms_per_step", "CPU ms/step (worker + server)"),
        ("ms_per_step", "wall ms/step"),
        ("bytes_per_step", "history bytes/step"),
    ):
        ratio = last[f"{key}_ratio"]
        rows.append(
            (
                "growth",
                f"{measure}, {span}",
                f"{last[key]}",
                f"{first[key]}",
                f"{ratio:.2f}",
                "flat (≤ 1.5)",
                _verdict(ratio <= 1.5),
            )
        )
    return rows


def _telemetry(r: dict[str, Any]) -> list[Row]:
    ratio = r["ratio_on_over_off"]
    return [
        (
            "telemetry overhead",
            "runs/s, telemetry on vs off",
            f"{r['median_on']}",
            f"{r['median_off']} (off)",
            f"{ratio:.3f}",
            "≥ 0.9",
            _verdict(ratio >= 0.9),
        )
    ]


def _replay(r: dict[str, Any]) -> list[Row]:
    replay = r["replay"]
    return [
        (
            "replay",
            "histories/s, 10-step runs",
            f"{replay['tiergate_10_step_per_second']}",
            f"{replay['bare_10_activity_per_second']} (bare 10 activities)",
            f"{replay['ratio_tiergate_over_bare']:.2f}",
            "reported",
            "",
        )
    ]


def _evals(r: dict[str, Any]) -> list[Row]:
    walls = r["wall_seconds"]
    fastest = min(walls.values())
    return [
        (
            "eval suite",
            f"wall s, {r['cases']} cases",
            f"{fastest}",
            f"{walls.get('1', walls.get(1, ''))} (concurrency 1)",
            f"{r['speedup_8_over_1']:.2f}",
            "< 60 s",
            _verdict(fastest < 60),
        )
    ]


def _detector(r: dict[str, Any]) -> list[Row]:
    rows = []
    for name, t in r["texts"].items():
        rows.append(
            (
                "detector cost",
                f"µs per kB, {name.replace('_', ' ')}",
                f"{t['new_us_per_kb']}",
                f"{t['old_us_per_kb']} (first detector)",
                f"{t['ratio']:.2f}",
                "measured (linear: 1 MB test)",
                "reported",
            )
        )
    rule = r["output_rule_per_emitting_call_us"]
    rows.append(
        (
            "detector cost",
            "µs per emitting call, output rule (1 kB body)",
            f"{rule['new']}",
            f"{rule['old']} (first detector)",
            f"{rule['new'] / rule['old']:.2f}",
            "measured",
            "reported",
        )
    )
    return rows


def _shared_state(r: dict[str, Any]) -> list[Row]:
    rate = r["runs_per_second"]
    return [
        (
            "shared state",
            "runs/s, state and content in PostgreSQL vs the SQLite default",
            f"{rate['postgresql']}",
            f"{rate['sqlite']} (SQLite)",
            f"{r['ratio_postgresql_over_sqlite']:.3f} "
            f"(paired {r['median_paired_ratio_postgresql_over_sqlite']:.3f})",
            "measured",
            "reported",
        ),
        (
            "shared state",
            "runs/s, state and content in PostgreSQL vs bare Temporal",
            f"{rate['postgresql']}",
            f"{rate['bare']} (bare)",
            f"{r['ratio_postgresql_over_bare']:.3f} "
            f"(paired {r['median_paired_ratio_postgresql_over_bare']:.3f})",
            "measured",
            "reported",
        ),
    ]


def _shared_approvals(r: dict[str, Any]) -> list[Row]:
    if "approval_latency" not in r:
        return []
    p50 = {kind: r["approval_latency"][kind]["p50_ms"] for kind in ("postgresql", "sqlite", "bare")}
    return [
        (
            "shared state",
            "approval p50 ms, PostgreSQL vs the SQLite default",
            f"{p50['postgresql']}",
            f"{p50['sqlite']} (SQLite)",
            f"{r['approval_ratio_p50_postgresql_over_sqlite']:.3f}",
            "measured",
            "reported",
        ),
        (
            "shared state",
            "approval p50 ms, PostgreSQL vs a bare update",
            f"{p50['postgresql']}",
            f"{p50['bare']} (bare update)",
            f"{r['approval_ratio_p50_postgresql_over_bare']:.3f}",
            "p50 ≤ 50 ms",
            "met" if p50["postgresql"] <= 50 else "**missed**",
        ),
    ]


def _content_storage(r: dict[str, Any]) -> list[Row]:
    stored, per_step = r["s3_bytes_per_run"], r["ms_per_step"]
    return [
        (
            "content storage",
            "S3 bytes per run, growing conversation, vs Temporal External Storage",
            f"{stored['chain_s3']}",
            f"{stored['external_all']} (External Storage, threshold 0)",
            f"{stored['chain_s3'] / stored['external_all']:.3f}",
            "measured",
            "reported",
        ),
        (
            "content storage",
            "ms per step, vs Temporal External Storage",
            f"{per_step['chain_s3']}",
            f"{per_step['external_all']} (External Storage, threshold 0)",
            f"{per_step['chain_s3'] / per_step['external_all']:.3f}",
            "measured",
            "reported",
        ),
    ]


def _what_if(r: dict[str, Any]) -> list[Row]:
    low, high = r["ratio_range"]
    return [
        (
            "policy what-if",
            f"decisions/s re-decided over {r['runs_per_round']} recorded runs, vs the gate alone",
            f"{r['what_if_decisions_per_second']}",
            f"{r['gate_only_decisions_per_second']} (gate alone)",
            f"{r['ratio']:.3f} ({low:.2f}–{high:.2f})",
            "measured",
            "reported",
        ),
        (
            "policy what-if",
            "decisions/s from exported history files (JSON parse included)",
            f"{r['from_files_decisions_per_second']}",
            f"{r['gate_only_decisions_per_second']} (gate alone)",
            f"{r['from_files_decisions_per_second'] / r['gate_only_decisions_per_second']:.3f}",
            "measured",
            "reported",
        ),
    ]


def _cli(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for key, label in (
        ("help", "`tiergate --help`, wall s"),
        ("runs_show_history", "`tiergate runs show --history FILE`, wall s"),
    ):
        x = r[key]
        rows.append(
            (
                "CLI start-up",
                f"{label}, median of {r['runs']}",
                f"{x['wall_s_median']}",
                f"{x['baseline_wall_s_median']} (interpreter start)",
                f"{x['ratio_to_interpreter_start']:.1f}",
                f"< {x['target_s']} s",
                _verdict(x["target_met"]),
            )
        )
    return rows


def _parallel(r: dict[str, Any]) -> list[Row]:
    calls, seconds = r["model_calls_per_task"], r["task_seconds"]
    return [
        (
            "parallel tool calls",
            "model calls per 4-read task",
            f"{calls['parallel']:g}",
            f"{calls['serial']:g} (one call per answer)",
            f"{calls['serial'] / calls['parallel']:.2f}",
            "2 (5 serial)",
            _verdict(calls["parallel"] == 2 and calls["serial"] == 5),
        ),
        (
            "parallel tool calls",
            "wall s per 4-read task, median (model answers after "
            f"{r['command'].split('--model-latency ')[-1]} s)",
            f"{seconds['parallel']}",
            f"{seconds['serial']} (one call per answer)",
            f"{r['ratio_serial_over_parallel']:.2f}",
            "measured",
            "reported",
        ),
    ]


def _peers(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for length, figures in r.items():
        if not length.startswith("steps_"):
            continue
        steps, kinds = length.removeprefix("steps_"), figures["kinds"]
        tier, pyd, oai = kinds["tiergate"], kinds["pydantic_ai"], kinds["openai_agents"]
        fast = max(pyd["runs_per_second"], oai["runs_per_second"])
        lean = min(pyd["cpu_ms_per_run"], oai["cpu_ms_per_run"])
        ratio = tier["runs_per_second"] / fast
        rows.append(
            (
                "peers",
                f"runs/s, {steps} steps (Pydantic AI {pyd['runs_per_second']}, OpenAI Agents "
                f"{oai['runs_per_second']}, bare {kinds['bare']['runs_per_second']})",
                f"{tier['runs_per_second']}",
                f"{fast} (faster peer)",
                f"{ratio:.2f}",
                "≥ 1.2",
                _verdict(ratio >= 1.2),
            )
        )
        rows.append(
            (
                "peers",
                f"CPU ms/run, {steps} steps (Pydantic AI {pyd['cpu_ms_per_run']}, OpenAI Agents "
                f"{oai['cpu_ms_per_run']}, bare {kinds['bare']['cpu_ms_per_run']})",
                f"{tier['cpu_ms_per_run']}",
                f"{lean} (leaner peer)",
                f"{lean / tier['cpu_ms_per_run']:.2f}",
                "> 1",
                _verdict(tier["cpu_ms_per_run"] < lean),
            )
        )
        history = (
            f"history bytes, {steps} steps (Pydantic AI {pyd['history_bytes']:,}, OpenAI "
            f"Agents {oai['history_bytes']:,}, bare {kinds['bare']['history_bytes']:,})"
        )
        if steps == "40":
            ok = (
                tier["history_bytes"] <= pyd["history_bytes"] / 5
                and tier["history_bytes"] <= oai["history_bytes"] * 2 / 3
            )
            target, verdict = "≤ 1/5 Pydantic AI, ≤ 2/3 OpenAI Agents", _verdict(ok)
        else:
            ok = tier["history_bytes"] <= min(pyd["history_bytes"], oai["history_bytes"])
            target, verdict = "≤ the leaner peer", _verdict(ok)
        leaner = min(pyd["history_bytes"], oai["history_bytes"])
        rows.append(
            (
                "peers",
                history,
                f"{tier['history_bytes']:,}",
                f"{leaner:,} (leaner peer)",
                f"{tier['history_bytes'] / leaner:.2f}",
                target,
                verdict,
            )
        )
    return rows


SOURCES: list[tuple[str, Callable[[dict[str, Any]], list[Row]]]] = [
    ("overhead", _overhead),
    ("gate_latency", _gate),
    ("approval_latency", _approval),
    ("waiting_scale", _waiting),
    ("growth", _growth),
    ("telemetry_overhead", _telemetry),
    ("replay_forensics", _replay),
    ("eval_suite", _evals),
    ("detector_cost", _detector),
    ("shared_state", _shared_state),
    ("shared_state", _shared_approvals),
    ("content_storage", _content_storage),
    ("what_if", _what_if),
    ("cli_startup", _cli),
    ("parallel_calls", _parallel),
    ("peers", _peers),
]


def table(results: Path) -> str:
    rows: list[Row] = []
    for name, render in SOURCES:
        path = results / f"{name}.json"
        if not path.exists():
            rows.append((name, f"not measured: no {path}", "", "", "", "", "run `make bench`"))
            continue
        rows.extend(render(json.loads(path.read_text())))
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=Path("bench/results"))
    print(table(parser.parse_args().results))
