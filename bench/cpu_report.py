"""bench/cpu.py's markdown report: one table a measured window, then the profiles' summaries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bench.cpu_profile import Summary, format_summary

if TYPE_CHECKING:
    from bench.cpu import Row, Run, Window


def _mb(kb: int) -> str:
    return f"{kb / 1024:.1f}" if kb else "-"


def _row(row: Row, window: Window, label: str | None = None) -> str:
    per_1k = f" {row.cpu_s * 1000 / window.ok:.3f} |" if window.ok else ""
    core = row.cpu_s * 100 / window.seconds if window.seconds else 0.0
    memory = row.memory
    lost = f" ({row.lost} ended)" if row.lost else ""
    return (
        f"| {label or row.name}{lost} | {memory.processes} / {memory.threads} | {row.cpu_s:.2f} |{per_1k} {core:.1f} "
        f"| {_mb(memory.rss_kb)} | {_mb(memory.pss_kb)} |"
    )


def window_table(window: Window, connections: int, target: str) -> str:
    if window.phase == "idle":
        title = f"### {window.label}"
    else:
        rps = window.ok / window.seconds if window.seconds else 0.0
        title = (
            f"### {window.label}, closed loop c={connections}: {window.ok} ok, {window.errors} errors "
            f"in {window.seconds:.1f} s = {rps:.0f} req/s"
        )
    per_1k = " CPU s per 1k req (= ms/req) |" if window.ok else ""
    lines = [
        title,
        "",
        f"| process | processes / threads | CPU s |{per_1k} % of one core | RSS MB | PSS MB |",
        "|---|---:|---:|" + "---:|" * (4 if window.ok else 3),
    ]
    inside = [r for r in window.rows if r.in_llmgw]
    outside = [r for r in window.rows if not r.in_llmgw]
    lines += [_row(r, window) for r in inside]
    total_cpu = window.llmgw_cpu_s
    per_request = f"{total_cpu * 1000 / window.ok:.3f}" if window.ok else ""
    per_request_cell = f" **{per_request}** |" if window.ok else ""
    core = total_cpu * 100 / window.seconds if window.seconds else 0.0
    threads = sum(r.memory.threads for r in inside)
    procs = sum(r.memory.processes for r in inside)
    rss = sum(r.memory.rss_kb for r in inside)
    pss = sum(r.memory.pss_kb for r in inside)
    lines.append(
        f"| **{target} total** | {procs} / {threads} | **{total_cpu:.2f}** |{per_request_cell} {core:.1f} | {_mb(rss)} | {_mb(pss)} |"
    )
    lines += [_row(r, window, f"{r.name} (not in the total)") for r in outside]
    if window.ok:
        lines += ["", f"{target}: **{per_request} ms of CPU per request** at {window.ok / window.seconds:.0f} req/s."]
    for sample in window.error_samples:
        lines.append(f"- error: {sample}")
    return "\n".join(lines)


def markdown(run: Run) -> str:
    pinning = f"{run.target} on CPU 0, load generator and fake upstream on CPU 1" if run.pinned else "not pinned"
    parts = [
        f"## bench.cpu: {run.target} at {run.commit}, {run.started_utc}",
        "",
        f"- {run.cores} cores, {pinning}; load average {run.loadavg_before} before, {run.loadavg_after} after",
        *(f"- {note}" for note in run.notes),
    ]
    for window in run.windows:
        parts += ["", window_table(window, run.connections, run.target)]
        cpu_of = {row.name: row.cpu_s for row in window.rows}
        for name, profile in window.profiles.items():
            summary = Summary(profile["samples"], [tuple(t) for t in profile["top"]])
            parts += [
                "",
                format_summary(f"{window.phase} / {name}", summary, window.seconds, run.profile_rate, cpu_of.get(name, 0.0)),
                "",
                f"profile: `{profile['path']}`",
            ]
    return "\n".join(parts)
