"""Soak test for llmrelay (issue 11): minutes of mixed load on a real `llmrelay serve`, with
its memory, file descriptors, CLOSE_WAIT sockets, calls and usage rows sampled all along.

Starts the shared harness's fake upstream (../shared/bench/upstream.py) and `llmrelay serve`
with bench/soak.yaml.tmpl (an Anthropic-wire and an OpenAI-wire account on the fake, the
offline mock, a mock that always answers 529, two virtual models; usage rows in SQLite in
the workdir). Load generator and upstream run on --load-core, the gateway on --gateway-core
(when the machine has 2 cores or more). Then, for --minutes, --concurrency closed-loop
clients send a mix (bench/soak_load.py): Messages and Chat Completions, JSON and streams,
passthrough, translated, routed and falling back, count_tokens, model lists, bad JSON (400),
unknown models (404), a provider's 529, wrong keys (401), clients that go away mid-stream,
and a round of official-SDK calls every --sdk-every seconds.

Every --sample-every seconds: the gateway's RSS and open fds (summed over its process tree),
its TCP sockets in CLOSE_WAIT, its CPU time, the calls made so far by status class, and the
rows in the usage table. At the end: the load stops, the usage writer is given time to flush
(until the row count stops growing), the gateway is stopped with SIGINT and the rows are
counted again. Prints a markdown table and a summary; writes results.json, samples.md and
the logs to --workdir (default: a new /tmp/llmrelay-soak-*), never into the repo.
Before the stop, after --idle-wait seconds without load, an "idle after" sample shows what
the gateway holds at rest (compare its fds and sockets with the first sample's).

Exit status: 0 all checks passed; 1 a check failed: usage rows != authenticated calls
(each call to /v1/messages, count_tokens or /v1/chat/completions with the right key has
exactly one row; 401s and model lists have none), RSS grew more than --max-rss-growth-mb
between the 25% mark and the end of the load, an answer the load did not ask for (a 5xx
other than the 529 it asks for, a wrong status, a stream without its last event, an SDK
that could not parse), or the gateway did not exit cleanly on SIGINT; 2 the soak could not
run (the gateway or the upstream did not start, or exited during the soak: the log tail is
printed); 130 interrupted.

    bench/soak.sh                      # 15 minutes, 32 connections
    bench/soak.sh --minutes 0.5 --sample-every 5    # a 30 s trial
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
HARNESS = Path(os.environ.get("LLMRELAY_BENCH_HARNESS", HERE.parent.parent / "shared" / "bench"))
VENV = Path(os.environ.get("LLMRELAY_VENV", HERE.parent / ".venv"))
sys.dont_write_bytecode = True  # shared/ is read-only for developers
sys.path.insert(0, str(HARNESS))
from run import UPSTREAM_KEY, free_port, offline_env, subst, tail  # noqa: E402
from soak_load import Kind, SdkChecks, call_once, kinds, worker  # noqa: E402
from soak_probe import Probe, count_rows, log_stats, rows_by_status  # noqa: E402
from soak_report import Run, progress_line, report  # noqa: E402

GATEWAY_KEY = "sk-soak-key-0001"


class SoakError(Exception):
    """The soak could not run (exit 2); the message says why, with a log tail."""


# ------------------------------------------------------------------------------------------
# processes
# ------------------------------------------------------------------------------------------
def spawn(cmd: list[str], log: Path, env: dict[str, str], core: int | None) -> subprocess.Popen:
    """Start ``cmd`` in its own session, its output in ``log``, pinned to ``core`` if given."""
    pin = (lambda: os.sched_setaffinity(0, {core})) if core is not None else None
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=pin,
        )


def end_process(proc: subprocess.Popen, first: signal.Signals, wait_s: float) -> tuple[str, float]:
    """Send ``first`` (then SIGTERM, then SIGKILL to the process group, each after its
    wait); returns (the signal that ended it, seconds taken)."""
    t0 = time.monotonic()
    steps = ((first, wait_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0))
    for sig, wait in steps:
        if proc.poll() is not None:
            break
        try:
            if sig is first:
                os.kill(proc.pid, sig)
            else:
                os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            return sig.name, time.monotonic() - t0
        except subprocess.TimeoutExpired:
            continue
    return "already exited", time.monotonic() - t0


async def wait_ready(
    session: aiohttp.ClientSession, url: str, proc: subprocess.Popen, log: Path, limit_s: float
) -> float:
    """Poll ``url`` until it answers below 500; seconds it took. SoakError if the process
    exits first or ``limit_s`` passes."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    last = ""
    while loop.time() - t0 < limit_s:
        if proc.poll() is not None:
            raise SoakError(
                f"{log.stem} exited with code {proc.returncode} before {url} answered;"
                f" log tail:\n{tail(log)}"
            )
        try:
            async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                if r.status < 500:
                    return loop.time() - t0
                last = f"HTTP {r.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            last = f"{type(err).__name__}: {err}"
        await asyncio.sleep(0.2)
    raise SoakError(f"{url} not ready after {limit_s:.0f}s (last: {last}); log tail:\n{tail(log)}")


def package_info(llmrelay: Path, env: dict[str, str]) -> dict[str, str]:
    """Where the gateway's llmrelay package comes from, and its commit when in a git tree."""
    python = llmrelay.parent / "python"
    code = "import llmrelay, os; print(os.path.dirname(llmrelay.__file__))"
    try:
        pkg = subprocess.run(
            [str(python if python.exists() else sys.executable), "-c", code],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as err:
        return {"package": f"unknown ({type(err).__name__})", "commit": "unknown"}
    git = ["git", "-C", pkg]
    try:
        commit = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            [*git, "status", "--porcelain", "--", "."], capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "", ""
    if commit and dirty:
        commit += " + uncommitted changes"
    return {"package": pkg, "commit": commit or "unknown (not a git tree)"}


# ------------------------------------------------------------------------------------------
# the soak
# ------------------------------------------------------------------------------------------
async def soak(a: argparse.Namespace, run: Run, gw: subprocess.Popen, up: subprocess.Popen) -> None:
    workdir = run.workdir
    base, upstream = run.meta["gateway_url"], run.meta["upstream_url"]
    timeout = aiohttp.ClientTimeout(total=60, sock_connect=10, sock_read=30)
    connector = aiohttp.TCPConnector(limit=a.concurrency)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, skip_auto_headers=("User-Agent",)
    ) as session:
        s = await wait_ready(session, upstream + "/v1/models", up, workdir / "upstream.log", 30)
        run.say(f"fake upstream ready in {s:.1f}s at {upstream}")
        s = await wait_ready(
            session, base + "/health", gw, workdir / "gateway.log", a.ready_timeout
        )
        run.say(f"gateway ready in {s:.1f}s at {base} (pid {gw.pid})")
        mix = kinds(GATEWAY_KEY)
        sdk = SdkChecks(base, GATEWAY_KEY, run.tally) if a.sdk_every > 0 else None
        try:
            await preflight(session, base, mix, sdk, run)
            await load(a, run, session, base, mix, sdk, gw, up)
        finally:
            if sdk is not None:
                await sdk.aclose()
        if run.crash:
            return
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with session.get(upstream + "/_stats") as r:
                run.end["upstream_requests"] = await r.json()
    await finish(a, run, gw, up)


async def preflight(
    session: aiohttp.ClientSession, base: str, mix: list[Kind], sdk: SdkChecks | None, run: Run
) -> None:
    """Each kind once (and one SDK round): a config or gateway that answers wrongly stops
    the soak now, not after 15 minutes."""
    tally = run.tally
    for kind in mix:
        await call_once(session, base, kind, tally)
    if sdk is not None:
        await sdk.run_round()
    if tally.unexpected:
        lines = [f"  {k}: {w}: {tally.examples[(k, w)]}" for (k, w) in tally.unexpected]
        raise SoakError(
            "the first call of each kind did not answer as expected:\n" + "\n".join(lines)
        )
    run.say(f"preflight: {len(mix)} kinds of call and the SDK checks answer as expected")


async def load(
    a: argparse.Namespace,
    run: Run,
    session: aiohttp.ClientSession,
    base: str,
    mix: list[Kind],
    sdk: SdkChecks | None,
    gw: subprocess.Popen,
    up: subprocess.Popen,
) -> None:
    """The load phase: workers, SDK rounds, samples, and a watch on both processes."""
    loop = asyncio.get_running_loop()
    duration = a.minutes * 60
    probe = Probe(gw.pid, up.pid, ports(run), run.workdir / "llmrelay-usage.db", run.tally)
    stop = asyncio.Event()
    t0 = loop.time()

    async def sampler() -> None:
        k = 0
        while not stop.is_set():
            s = await probe.sample(loop.time() - t0)
            run.samples.append(s)
            run.say(progress_line(s, run.samples[-2] if len(run.samples) > 1 else None))
            k += 1
            next_t = k * a.sample_every
            if next_t >= duration - 0.5:
                return  # the end-of-load sample comes next
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), t0 + next_t - loop.time())

    async def sdk_rounds() -> None:
        assert sdk is not None
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), a.sdk_every)
            if not stop.is_set():
                await sdk.run_round()

    async def watch() -> None:
        while not stop.is_set():
            for name, proc in (("gateway", gw), ("fake upstream", up)):
                rc = proc.poll()
                if rc is not None:
                    how = (
                        f"was killed by {signal.Signals(-rc).name}" if rc < 0 else f"exited ({rc})"
                    )
                    run.crash = f"the {name} {how} {loop.time() - t0:.0f}s into the load"
                    stop.set()
                    return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    rng = random.Random(a.seed)
    run.say(
        f"load: {a.minutes:g} min, {a.concurrency} connections; samples every {a.sample_every:g}s",
    )
    run.say()
    workers = [
        asyncio.create_task(
            worker(session, base, mix, random.Random(rng.random()), run.tally, stop)
        )
        for _ in range(a.concurrency)
    ]
    if sdk is not None:
        workers.append(asyncio.create_task(sdk_rounds()))
    sampling, watching = asyncio.create_task(sampler()), asyncio.create_task(watch())
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), duration)
    stop.set()
    await watching
    if not run.crash:
        await sampling
        s = await probe.sample(loop.time() - t0, "end of load")
        run.samples.append(s)
        run.say(progress_line(s, run.samples[-2]))
    else:
        sampling.cancel()
    # Calls in flight run to their end (each is bounded by the client's 60 s timeout).
    _, pending = await asyncio.wait(workers, timeout=10 if run.crash else 90)
    for task in pending:
        task.cancel()
    run.tally.rows_unknown += len(pending)  # a call cut by us may or may not have a row
    run.end["load_seconds"] = round(loop.time() - t0, 1)


def ports(run: Run) -> dict[int, str]:
    """Which side of the gateway a socket is on, by port (see ``soak_probe.tcp_states``)."""
    return {run.meta["gateway_port"]: "clients", run.meta["upstream_port"]: "upstream"}


async def finish(
    a: argparse.Namespace, run: Run, gw: subprocess.Popen, up: subprocess.Popen
) -> None:
    """After the load: wait for the usage writer, sample idle, stop with SIGINT, recount."""
    db = run.workdir / "llmrelay-usage.db"
    want = run.tally.rows_expected
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    rows, still = await asyncio.to_thread(count_rows, db), 0
    while loop.time() - t0 < a.flush_timeout and rows != want and still < 3:
        await asyncio.sleep(1)
        now = await asyncio.to_thread(count_rows, db)
        still = still + 1 if now == rows else 0
        rows = now
    run.end["flush_seconds"] = round(loop.time() - t0, 1)
    run.end["rows_before_stop"] = rows
    # Idle: pooled connections to the upstream expire (aiohttp closes them 15-30 s after
    # their last use), so fds and sockets here compare with the first sample's.
    await asyncio.sleep(a.idle_wait)
    probe = Probe(gw.pid, up.pid, ports(run), db, run.tally)
    idle_t = run.end["load_seconds"] + run.end["flush_seconds"] + a.idle_wait
    idle = await probe.sample(idle_t, "idle after")
    run.samples.append(idle)
    run.say(progress_line(idle, None))
    if gw.poll() is not None:
        run.crash = f"the gateway exited ({gw.returncode}) after the load, before the stop"
        return
    how, took = await asyncio.to_thread(end_process, gw, signal.SIGINT, a.stop_timeout)
    run.end["stop"] = {"signal": how, "seconds": round(took, 1), "exit_code": gw.returncode}
    run.end["rows_after_stop"] = await asyncio.to_thread(count_rows, db)
    run.end["rows_by_status"] = await asyncio.to_thread(rows_by_status, db)
    run.end["gateway_log"] = log_stats(run.workdir / "gateway.log")


# ------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="bench/soak.sh",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--minutes", type=float, default=15, help="length of the load (default 15)")
    ap.add_argument(
        "--concurrency", type=int, default=32, help="closed-loop connections (default 32)"
    )
    ap.add_argument(
        "--sample-every", type=float, default=10, help="seconds between samples (default 10)"
    )
    ap.add_argument(
        "--table-every",
        type=float,
        default=60,
        help="seconds between the printed table's rows; samples.md has them all (default 60)",
    )
    ap.add_argument(
        "--sdk-every",
        type=float,
        default=20,
        help="seconds between rounds of official-SDK calls; 0: none (default 20)",
    )
    ap.add_argument(
        "--max-rss-growth-mb",
        type=float,
        default=16,
        help="RSS growth allowed from the 25%% mark to the end of the load (default 16)",
    )
    ap.add_argument(
        "--stream-events", type=int, default=50, help="text deltas per upstream stream (default 50)"
    )
    ap.add_argument(
        "--stream-delay-ms",
        type=float,
        default=2,
        help="upstream pause between stream events (default 2)",
    )
    ap.add_argument(
        "--latency-ms",
        type=float,
        default=0,
        help="upstream delay before each response (default 0)",
    )
    ap.add_argument(
        "--llmrelay",
        default=str(VENV / "bin" / "llmrelay"),
        help="the llmrelay command (default: $LLMRELAY_VENV/bin/llmrelay, else the repo's .venv)",
    )
    ap.add_argument("--config-template", default=str(HERE / "soak.yaml.tmpl"))
    ap.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="gateway log level (default: the config's, warning)",
    )
    ap.add_argument(
        "--workdir",
        help="logs, config, usage DB, results.json (default: a new /tmp/llmrelay-soak-*)",
    )
    ap.add_argument("--load-core", type=int, default=0)
    ap.add_argument("--gateway-core", type=int, default=1)
    ap.add_argument(
        "--ready-timeout",
        type=float,
        default=60,
        help="seconds for the gateway to start (default 60)",
    )
    ap.add_argument(
        "--flush-timeout",
        type=float,
        default=30,
        help="seconds to wait for usage rows after the load (default 30)",
    )
    ap.add_argument(
        "--idle-wait",
        type=float,
        default=35,
        help="seconds idle after the load before the idle sample (default 35)",
    )
    ap.add_argument(
        "--stop-timeout",
        type=float,
        default=30,
        help="seconds the gateway gets to exit on SIGINT (default 30)",
    )
    ap.add_argument("--seed", type=int, default=1, help="random seed of the mix (default 1)")
    a = ap.parse_args(argv)
    if a.minutes <= 0 or a.concurrency < 1 or a.sample_every <= 0:
        ap.error("--minutes, --concurrency and --sample-every must be positive")
    return a


def check_setup(a: argparse.Namespace) -> Path:
    """The llmrelay command, once the tools the soak needs are known to be there."""
    llmrelay = Path(a.llmrelay)
    if not os.access(llmrelay, os.X_OK):
        sys.exit(f"error: {llmrelay} is not an executable (make test, or set LLMRELAY_VENV)")
    if a.sdk_every > 0:
        try:
            import anthropic  # noqa: F401
            import openai  # noqa: F401
        except ImportError:
            sys.exit(
                "error: the SDK checks need anthropic and openai (pip install -e '.[test]',"
                " which make test does), or --sdk-every 0"
            )
    return llmrelay


def new_run(a: argparse.Namespace, llmrelay: Path, pinned: bool, env: dict[str, str]) -> Run:
    """The workdir, the filled-in config and what results.json says about the run."""
    if a.workdir:
        workdir = Path(a.workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    else:
        mktemp = ["mktemp", "-d", "/tmp/llmrelay-soak-XXXXXX"]
        workdir = Path(subprocess.check_output(mktemp, text=True).strip())
    port, up_port = free_port(), free_port()
    values = {
        "port": str(port),
        "upstream_url": f"http://127.0.0.1:{up_port}",
        "key": GATEWAY_KEY,
        "upstream_key": UPSTREAM_KEY,
        "workdir": str(workdir),
    }
    config = workdir / "soak.yaml"
    config.write_text(subst(Path(a.config_template).read_text(), values))
    meta = {
        "argv": sys.argv[1:],
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "gateway_url": f"http://127.0.0.1:{port}",
        "gateway_port": port,
        "upstream_url": values["upstream_url"],
        "upstream_port": up_port,
        "config": str(config),
        "cores": len(os.sched_getaffinity(0)),
        "pinned": pinned,
        "load_core": a.load_core if pinned else None,
        "gateway_core": a.gateway_core if pinned else None,
        **package_info(llmrelay, env),
        "options": vars(a),
    }
    return Run(workdir, meta)


def main() -> int:
    a = parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the processes
    llmrelay = check_setup(a)
    cores = os.sched_getaffinity(0)
    pinned = len(cores) >= 2 and {a.load_core, a.gateway_core} <= cores
    if pinned:
        os.sched_setaffinity(0, {a.load_core})  # this process, its load and the upstream
    env = offline_env({})  # the gateway's: no proxies, no provider keys, no real base URLs
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"  # the SDK clients
    run = new_run(a, llmrelay, pinned, env)
    meta, workdir = run.meta, run.workdir
    run.say(f"workdir {workdir}; llmrelay {meta['package']} ({meta['commit']})")
    run.say(
        f"cores: load + upstream {a.load_core}, gateway {a.gateway_core}"
        if pinned
        else f"not pinned: {len(cores)} core(s) available, the soak needs 2 to pin"
    )
    up_cmd = [sys.executable, "-B", str(HARNESS / "upstream.py"), "--port"]
    up_cmd += [str(meta["upstream_port"]), "--latency-ms", str(a.latency_ms)]
    up_cmd += ["--stream-events", str(a.stream_events), "--stream-delay-ms", str(a.stream_delay_ms)]
    gw_cmd = [str(llmrelay), "serve", "--config", meta["config"], "--host", "127.0.0.1"]
    gw_cmd += ["--port", str(meta["gateway_port"])]
    gw_cmd += ["--log-level", a.log_level] if a.log_level else []
    procs: list[subprocess.Popen] = []
    gw: subprocess.Popen | None = None
    code = 2
    try:
        up = spawn(
            up_cmd, workdir / "upstream.log", dict(os.environ), a.load_core if pinned else None
        )
        procs.append(up)
        gw = spawn(gw_cmd, workdir / "gateway.log", env, a.gateway_core if pinned else None)
        procs.append(gw)
        try:
            import uvloop

            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        runner(soak(a, run, gw, up))
        if run.crash:
            raise SoakError(
                f"{run.crash} (samples so far in {workdir / 'results.json'});"
                f" gateway log tail:\n{tail(workdir / 'gateway.log')}"
            )
        code = 0 if report(a, run) else 1
    except SoakError as err:
        text = str(err)
        if gw is not None and gw.poll() is not None and "log tail" not in text:
            gw_log = tail(workdir / "gateway.log")
            text += f"\nthe gateway exited ({gw.returncode}); log tail:\n{gw_log}"
        run.say(f"\nerror: {text}")
    except KeyboardInterrupt:
        run.say("\ninterrupted")
        code = 130
    finally:
        for p in reversed(procs):
            end_process(p, signal.SIGTERM, 10)
        run.meta["exit_status"] = code
        run.save()
    return code


if __name__ == "__main__":
    sys.exit(main())
