"""The soak's record and report (bench/soak.py): what was seen, results.json, the progress
lines, the markdown table, the checks and the summary."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak_load import Tally

__all__ = ["Run", "clock", "progress_line", "report"]


@dataclass
class Run:
    """Everything the soak has seen so far (written to results.json, even when cut short)."""

    workdir: Path
    meta: dict[str, Any]
    tally: Tally = field(default_factory=Tally)
    samples: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)
    crash: str = ""

    def say(self, text: str = "") -> None:
        """Print a line, and keep it in the workdir's soak.log."""
        with contextlib.suppress(OSError):  # a closed stdout must not end the soak
            print(text, flush=True)
        with open(self.workdir / "soak.log", "a") as f:
            f.write(text + "\n")

    def save(self) -> None:
        t = self.tally
        out = {
            "meta": self.meta,
            "samples": self.samples,
            "end": self.end,
            "crash": self.crash,
            "calls": {
                "total": t.calls,
                "by_class": dict(t.classes),
                "by_kind": {k: dict(v) for k, v in sorted(t.by_kind.items())},
                "rows_expected": t.rows_expected,
                "rows_unknown": t.rows_unknown,
                "unexpected": [
                    {"kind": k, "what": w, "count": n, "example": t.examples.get((k, w), "")}
                    for (k, w), n in t.unexpected.most_common()
                ],
            },
        }
        (self.workdir / "results.json").write_text(json.dumps(out, indent=1))


def progress_line(s: dict[str, Any], prev: dict[str, Any] | None) -> str:
    rate = cpu = ""
    if prev is not None and s["t"] > prev["t"]:
        dt = s["t"] - prev["t"]
        rate = f" ({(s['calls'] - prev['calls']) / dt:,.0f}/s)"
        cpu = f"  CPU: gateway {100 * (s['cpu_s'] - prev['cpu_s']) / dt:.0f}%"
        cpu += f", load side {100 * (s['load_cpu_s'] - prev['load_cpu_s']) / dt:.0f}%"
    rows = "—" if s["rows"] is None else f"{s['rows']:,}"
    what = f"  [{s['what']}]" if "what" in s else ""
    return (
        f"  {clock(s['t'])}  RSS {s['rss_mb']:.1f} MB  fds {s['fds']}  CLOSE_WAIT"
        f" {s['close_wait']}  calls {s['calls']:,}{rate}  rows {rows}{cpu}{what}"
    )


def clock(t: float) -> str:
    return f"{int(t) // 60}:{int(t) % 60:02d}"


def table(samples: list[dict[str, Any]], mark: dict[str, Any] | None = None) -> list[str]:
    """The markdown table; calls/s and CPU over the time since the row above."""
    lines = [
        "| time | RSS MB | fds | CLOSE_WAIT | calls | rows | calls/s | gateway CPU % |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    prev = None
    for s in samples:
        rate = cpu = "—"
        if prev is not None and s["t"] > prev["t"] and "idle" not in s.get("what", ""):
            dt = s["t"] - prev["t"]
            rate = f"{(s['calls'] - prev['calls']) / dt:,.0f}"
            cpu = f"{100 * (s['cpu_s'] - prev['cpu_s']) / dt:.0f}"
        what = s.get("what") or ("25% mark" if s is mark else "")
        when = clock(s["t"]) + (f" ({what})" if what else "")
        rows = "—" if s["rows"] is None else f"{s['rows']:,}"
        lines.append(
            f"| {when} | {s['rss_mb']:.1f} | {s['fds']} | {s['close_wait']} | {s['calls']:,}"
            f" | {rows} | {rate} | {cpu} |"
        )
        prev = s
    return lines


def thin(samples: list[dict[str, Any]], every: float, keep: dict[str, Any]) -> list[dict[str, Any]]:
    """The samples nearest every ``every`` seconds from 0, ``keep``, the end-of-load and
    idle ones."""
    out, next_t = [], 0.0
    for s in samples:
        grid = "what" not in s and s["t"] >= next_t - 0.5
        while grid and next_t <= s["t"] + 0.5:
            next_t += every
        if grid or "what" in s or s is keep:
            out.append(s)
    return out


def under_load(run: Run) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The samples taken under load (the idle one left out), and the one at the 25% mark."""
    load = [s for s in run.samples if s.get("what") != "idle after"]
    return load, next(s for s in load if s["t"] >= 0.25 * load[-1]["t"])


def num(x: int | None) -> str:
    return "—" if x is None else f"{x:,}"


def checks(a: argparse.Namespace, run: Run) -> list[tuple[str, bool, str]]:
    """(check, passed, figures) for the summary and the exit status."""
    t, end = run.tally, run.end
    load, mark = under_load(run)
    growth = load[-1]["rss_mb"] - mark["rss_mb"]
    rows = end.get("rows_after_stop")
    rows_ok = rows is not None and t.rows_expected <= rows <= t.rows_expected + t.rows_unknown
    rows_text = f"usage rows {num(rows)}, authenticated calls {t.rows_expected:,}"
    if t.rows_unknown:
        rows_text += f" (+ up to {t.rows_unknown:,} whose connection failed: row unknown)"
    if rows is not None and rows != t.rows_expected:
        rows_text += f": {rows - t.rows_expected:+,}"
    unexpected = sum(t.unexpected.values())
    fives = sum(n for (_, w), n in t.unexpected.items() if w.startswith("HTTP 5"))
    stopped = end.get("stop", {})
    return [
        ("usage rows = authenticated calls", rows_ok, rows_text),
        (
            "RSS growth from the 25% mark to the end of the load",
            growth <= a.max_rss_growth_mb,
            f"{mark['rss_mb']:.1f} MB at {clock(mark['t'])} -> {load[-1]['rss_mb']:.1f} MB at"
            f" {clock(load[-1]['t'])}: {growth:+.1f} MB (limit +{a.max_rss_growth_mb:g})",
        ),
        (
            "no answers the load did not ask for",
            unexpected == 0,
            f"{unexpected:,} unexpected, {fives:,} of them 5xx",
        ),
        (
            "clean stop on SIGINT",
            stopped.get("signal") == "SIGINT" and stopped.get("exit_code") == 0,
            f"ended by {stopped.get('signal')} in {stopped.get('seconds')}s,"
            f" exit code {stopped.get('exit_code')}",
        ),
    ]


def report(a: argparse.Namespace, run: Run) -> bool:
    """Print the table and summary (and write samples.md); True when every check passed."""
    t, end, meta = run.tally, run.end, run.meta
    load, mark = under_load(run)
    (run.workdir / "samples.md").write_text("\n".join(table(run.samples, mark)) + "\n")
    idle = run.samples[-1]
    peak = max(load, key=lambda s: s["rss_mb"])
    cw_max = max(load, key=lambda s: s["close_wait"])
    secs = end["load_seconds"]
    dt = max(load[-1]["t"] - load[0]["t"], 0.1)
    gw_cpu = load[-1]["cpu_s"] - load[0]["cpu_s"]
    load_cpu = load[-1]["load_cpu_s"] - load[0]["load_cpu_s"]
    out = [
        "",
        f"### Soak ({meta['started']}, {a.minutes:g} min, {a.concurrency} connections,"
        f" commit {meta['commit']})",
        "",
        *table(thin(run.samples, a.table_every, mark), mark),
        "",
        f"- calls: {t.calls:,} in {secs:g}s ({t.calls / max(secs, 1):,.0f}/s): "
        + ", ".join(f"{k} {n:,}" for k, n in sorted(t.classes.items())),
        f"- RSS MB: first {load[0]['rss_mb']:.1f}, peak {peak['rss_mb']:.1f} at"
        f" {clock(peak['t'])}, end of load {load[-1]['rss_mb']:.1f}, idle after"
        f" {idle['rss_mb']:.1f}",
        f"- fds: first {load[0]['fds']}, end of load {load[-1]['fds']}, idle after {idle['fds']};"
        f" sockets idle after: {sockets_line(idle['sockets'])}",
        f"- CLOSE_WAIT: max {cw_max['close_wait']} (at {clock(cw_max['t'])}), idle after"
        f" {idle['close_wait']}",
        f"- usage rows: {num(end.get('rows_before_stop'))} before the stop (after"
        f" {end.get('flush_seconds')}s of flush), {num(end.get('rows_after_stop'))} after;"
        f" by status: {rows_line(end.get('rows_by_status', {}))}",
        f"- CPU over the load: gateway {100 * gw_cpu / dt:.0f}% of a core, load side (this"
        f" client and the fake upstream) {100 * load_cpu / dt:.0f}%"
        + (": the load side sets the rate" if load_cpu / dt > 0.9 else ""),
        f"- gateway log: {log_line(end.get('gateway_log', {}))}",
    ]
    results = checks(a, run)
    out += [f"- {'PASS' if ok else 'FAIL'}: {name}: {text}" for name, ok, text in results]
    out += ["", "Calls by kind (status the client saw: count):", ""]
    out += ["| kind | calls | answers | unexpected |", "|---|---:|---|---:|"]
    for kind, c in sorted(t.by_kind.items()):
        bad = sum(n for (k, _), n in t.unexpected.items() if k == kind)
        answers = ", ".join(f"{s}: {n:,}" for s, n in sorted(c.items()))
        out.append(f"| {kind} | {sum(c.values()):,} | {answers} | {bad:,} |")
    if t.unexpected:
        out += ["", "Unexpected answers (kind, what, count, first example):"]
        for (k, w), n in t.unexpected.most_common(20):
            out.append(f"- {k}: {w} x{n:,}: {t.examples.get((k, w), '')[:200]}")
    passed = all(ok for _, ok, _ in results)
    out += ["", f"{'PASSED' if passed else 'FAILED'}; raw figures: {run.workdir / 'results.json'}"]
    for line in out:
        run.say(line)
    return passed


def sockets_line(sockets: dict[str, dict[str, int]]) -> str:
    return "; ".join(
        f"{side} " + ", ".join(f"{state} {n}" for state, n in sorted(states.items()))
        for side, states in sockets.items()
    )


def rows_line(by: dict[str, dict[str, int]]) -> str:
    total: Counter[str] = Counter()
    for statuses in by.values():
        total.update(statuses)
    return ", ".join(f"{s} {n:,}" for s, n in sorted(total.items())) or "none"


def log_line(stats: dict[str, Any]) -> str:
    levels = stats.get("levels", {})
    if not levels:
        return "empty"
    text = ", ".join(f"{n} {lvl}" for lvl, n in sorted(levels.items()))
    msgs = stats.get("messages", {})
    if msgs:
        text += " (" + "; ".join(f"{m[:80]} x{n}" for m, n in list(msgs.items())[:3]) + ")"
    return text
