#!/usr/bin/env bash
# three-tier.sh: margay in front of three application servers that live on
# "machines" of their own, one of which dies under load and comes back.
#
#   wrk (core 1) --> margay front, 127.0.0.1 (core 0): static files from htdocs/,
#                    --proxy /api/=app1,app2,app3, active and passive health
#                       |  veth + netem delay, one network namespace per app
#                       +--> app1  examples/embedded  NET.1.2:9000
#                       +--> app2  examples/embedded  NET.2.2:9000   killed, then restarted
#                       +--> app3  examples/embedded  NET.3.2:9000
#
# Each application instance (the embedded example, a to-do JSON API) runs in
# its own network namespace, reached over a veth pair whose two ends each
# delay packets by DELAY (tc netem), as three machines on a network would be.
# wrk runs the mix of scripts/three-tier.lua against the front for DURATION
# seconds, in back-to-back runs of SLICE seconds so latency can be told before,
# during and after. At KILL_AT app2 gets SIGKILL (a crash: no goodbye); at
# RESTART_AT it is started again. Every second the front's /api/status is
# polled for its upstreams' states and counters.
#
# The report (bench-results/three-tier.md) gives the requests served, the
# errors (5xx answers and socket errors) and when they happened, latency before,
# during and after, when the front stopped sending to app2 and when the
# restarted app2 took traffic again.
#
# Usage (as root: it creates network namespaces):
#   scripts/three-tier.sh
#   DURATION=30 KILL_AT=10 RESTART_AT=20 scripts/three-tier.sh   # a shorter run
#
# Env:
#   DURATION    seconds of load (default 60)
#   KILL_AT     second at which app2 is killed (default 20)
#   RESTART_AT  second at which app2 is started again (default 40)
#   SLICE       seconds per wrk run (default 1)
#   CONNS       wrk connections (default 50)
#   DELAY       netem delay on each end of each link (default 1ms). A kernel
#               built without sch_netem cannot delay: the links then run
#               without it, and the report says so.
#   NET         the first two octets of the links' subnets NET.1.0/24 to
#               NET.3.0/24 (default 10.215)
#   FRONT_ARGS  more options for the front (default none)
# The namespaces and links are removed on exit, whatever the exit.
set -euo pipefail
source "$(dirname "$0")/common.sh"   # cd to the repo root; scratch directory; traps

DURATION=${DURATION:-60}
KILL_AT=${KILL_AT:-20}
RESTART_AT=${RESTART_AT:-40}
SLICE=${SLICE:-1}
CONNS=${CONNS:-50}
DELAY=${DELAY:-1ms}
NET=${NET:-10.215}
FRONT_ARGS=${FRONT_ARGS:-}
APP_PORT=9000
TAG=mt$$   # names of this run's namespaces and links (a link name has at most 15 bytes)

if [[ $(id -u) != 0 ]]; then
    echo "three-tier.sh creates network namespaces: run it as root" >&2
    exit 1
fi
if ! ((KILL_AT < RESTART_AT && RESTART_AT < DURATION)); then
    echo "need KILL_AT < RESTART_AT < DURATION" >&2
    exit 2
fi

# need_pkg CMD[=PACKAGE]...: installs the Debian package of each missing command.
need_pkg() {
    local spec
    for spec in "$@"; do need "${spec%%=*}" "${spec#*=}"; done
}
need_pkg ip=iproute2 tc=iproute2 taskset=util-linux curl wrk python3
# netem is a kernel module; the kernel may have it built in, or lack it.
modprobe sch_netem 2>/dev/null || true

APP_PIDS_FILE=$SCRATCH/app-pids   # "instance pid" lines; the restart appends to it

teardown() {
    local _ pid i
    if [[ -f $APP_PIDS_FILE ]]; then
        while read -r _ pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$APP_PIDS_FILE"
    fi
    for i in 1 2 3; do ip netns del "$TAG-app$i" 2>/dev/null || true; done
    cleanup
}
trap teardown EXIT

if ip -4 addr show | grep -q " inet $NET\."; then
    echo "addresses in $NET.0.0/16 are in use here: choose another NET" >&2
    exit 1
fi

log "cargo build --release (the server and the embedded example)"
cargo build --release --quiet --bin margay --example embedded
MARGAY=$SCRATCH/margay
APP=$SCRATCH/embedded
cp target/release/margay "$MARGAY"
cp target/release/examples/embedded "$APP"

# --- the network: one namespace and one delayed link per application machine
for i in 1 2 3; do
    ns=$TAG-app$i host=${TAG}h$i peer=${TAG}a$i
    ip netns add "$ns"
    ip link add "$host" type veth peer name "$peer"
    ip link set "$peer" netns "$ns"
    ip addr add "$NET.$i.1/24" dev "$host"
    ip link set "$host" up
    ip -n "$ns" addr add "$NET.$i.2/24" dev "$peer"
    ip -n "$ns" link set "$peer" up
    ip -n "$ns" link set lo up
    if [[ $DELAY != none ]] && ! tc qdisc add dev "$host" root netem delay "$DELAY" 2>/dev/null; then
        log "this kernel has no netem qdisc: the links run without added delay"
        DELAY=none
    fi
    if [[ $DELAY != none ]]; then
        ip netns exec "$ns" tc qdisc add dev "$peer" root netem delay "$DELAY"
    fi
done
log "namespaces $TAG-app1..3 up, delay on each end of each link: $DELAY"

# start_app I LOGFILE: starts instance I in its namespace, pinned to the server
# core, with its own database; records its pid, waits until it answers, and
# gives it a to-do item (a restarted instance keeps its database, and gets one
# more).
start_app() {
    local i=$1 logfile=$2 pid n
    # Each machine has its own database.
    ip netns exec "$TAG-app$i" taskset -c "$SERVER_CORE" "$APP" --listen "$NET.$i.2:$APP_PORT" \
        --data "$SCRATCH/data-app$i" >"$logfile" 2>&1 &
    pid=$!
    echo "app$i $pid" >>"$APP_PIDS_FILE"
    for ((n = 0; n < 100; n++)); do
        curl -s -o /dev/null --max-time 1 "http://$NET.$i.2:$APP_PORT/api/todos" && break
        sleep 0.1
    done
    curl -s -o /dev/null -H 'Content-Type: application/json' -d '{"title":"water the plants"}' \
        "http://$NET.$i.2:$APP_PORT/api/todos"
    echo "$pid"
}

APP2_PID=""
for i in 1 2 3; do
    pid=$(start_app "$i" "$SCRATCH/app$i.log")
    [[ $i == 2 ]] && APP2_PID=$pid
done

raise_limits
PORT=$(free_port)
UPSTREAMS="http://$NET.1.2:$APP_PORT,http://$NET.2.2:$APP_PORT,http://$NET.3.2:$APP_PORT"
# shellcheck disable=SC2086   # FRONT_ARGS is a list of words
FRONT_CMD=("$MARGAY" --listen "127.0.0.1:$PORT" --root htdocs --access-log off --log-level info
    --proxy "/api/=$UPSTREAMS" --proxy-health-check /api/todos $FRONT_ARGS)
start_server "$SCRATCH/front.log" "${FRONT_CMD[@]}"
log "front on 127.0.0.1:$PORT, pid $SERVER_PID"

# --- the run: load in slices, the status polled every second, the kill and the restart
T0=$EPOCHREALTIME
since() { awk -v a="$T0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }

EVENTS=$SCRATCH/events.txt   # "seconds what"
: >"$EVENTS"
(
    while :; do
        t=$(since)
        body=$(curl -s --max-time 1 "http://127.0.0.1:$PORT/api/status" || true)
        [[ -n $body ]] || body='{}'
        printf '%s %s\n' "$t" "$body"
        sleep 1
    done
) >"$SCRATCH/polls.txt" 2>/dev/null &
POLLER=$!
EXTRA_PIDS+=" $POLLER"

(
    sleep "$KILL_AT"
    kill -KILL "$APP2_PID"
    echo "$(since) killed app2 (SIGKILL)" >>"$EVENTS"
    sleep $((RESTART_AT - KILL_AT))
    echo "$(since) restarting app2" >>"$EVENTS"
    start_app 2 "$SCRATCH/app2-restarted.log" >/dev/null
    echo "$(since) app2 answers again (and has its to-do item back)" >>"$EVENTS"
) &
CHAOS=$!
EXTRA_PIDS+=" $CHAOS"

SLICES=$SCRATCH/slices.txt   # "start end requests rps p50_ms p99_ms socket_errors 5xx 502 504"
: >"$SLICES"
log "load: wrk -c$CONNS against the front for $DURATION s, app2 killed at $KILL_AT s, restarted at $RESTART_AT s"
while :; do
    start=$(since)
    awk -v s="$start" -v d="$DURATION" 'BEGIN { exit !(s < d) }' || break
    out=$SCRATCH/wrk-slice.txt
    taskset -c "$CLIENT_CORE" wrk -t1 -c"$CONNS" -d"${SLICE}s" --timeout 5s --latency \
        -s scripts/three-tier.lua "http://127.0.0.1:$PORT" >"$out" 2>&1 || true
    end=$(since)
    read -r req rps p50 p99 err _ _ < <(wrk_summary "$out")
    read -r s5 s502 s504 < <(awk '$1 == "status5xx" { print $2, $4, $6 }' "$out")
    echo "$start $end $req $rps $p50 $p99 $err ${s5:-0} ${s502:-0} ${s504:-0}" >>"$SLICES"
done
wait "$CHAOS" 2>/dev/null || true
kill "$POLLER" 2>/dev/null || true
server_alive || { echo "the front died; its log:" >&2; tail -20 "$SCRATCH/front.log" >&2; exit 1; }

# --- the report
mkdir -p "$RESULTS_DIR"
OUT=$RESULTS_DIR/three-tier.md
export T0 KILL_AT RESTART_AT DURATION SLICE CONNS DELAY NET
python3 - "$SLICES" "$SCRATCH/polls.txt" "$EVENTS" "$SCRATCH/front.log" "$SCRATCH/app2-restarted.log" \
    "$(machine_line)" "$(git describe --always --dirty 2>/dev/null || echo unknown)" \
    "$NET.2.2:$APP_PORT" >"$SCRATCH/report.md" <<'PY'
import json, os, re, statistics, sys

slices_file, polls_file, events_file, front_log, restarted_log, machine, version, app2 = sys.argv[1:9]
kill_at, restart_at = float(os.environ["KILL_AT"]), float(os.environ["RESTART_AT"])
duration, slice_s = int(os.environ["DURATION"]), os.environ["SLICE"]
conns, delay, net = os.environ["CONNS"], os.environ["DELAY"], os.environ["NET"]

slices = []
for line in open(slices_file):
    s, e, req, rps, p50, p99, err, s5, s502, s504 = line.split()
    slices.append(dict(start=float(s), end=float(e), req=int(req), rps=float(rps),
                       p50=float(p50) if p50 != "nan" else None,
                       p99=float(p99) if p99 != "nan" else None, err=int(err), s5=int(s5),
                       s502=int(s502), s504=int(s504)))

polls = []
for line in open(polls_file):
    t, _, body = line.partition(" ")
    try:
        status = json.loads(body)
    except ValueError:
        continue
    members = {}
    for group in status.get("upstreams") or []:
        for m in group["members"]:
            members[m["addr"]] = m
    polls.append((float(t), members))

events = [(float(l.split(" ", 1)[0]), l.split(" ", 1)[1].strip()) for l in open(events_file) if l.strip()]
killed = next((t for t, what in events if what.startswith("killed")), kill_at)
restarted = next((t for t, what in events if what.startswith("app2 answers")), restart_at)

# When the front stopped choosing app2 (its state left "up"), and when it came back.
removed = next((t for t, m in polls if t > killed and m.get(app2, {}).get("state") != "up"), None)
back_up = next((t for t, m in polls if t > restarted and m.get(app2, {}).get("state") == "up"), None)
# When the restarted app2 served requests again: its request counter moved.
took_traffic = None
for (t0, m0), (t1, m1) in zip(polls, polls[1:]):
    if t0 >= restarted - 1 and m1.get(app2, {}).get("requests", 0) > m0.get(app2, {}).get("requests", 0):
        took_traffic = t1
        break
first_access = None
try:
    for line in open(restarted_log):
        m = re.search(r'\[(\d+/\w+/\d+:\d+:\d+:\d+ [+-]\d+)\] "(GET|POST|HEAD|PUT|DELETE)', line)
        if m:
            first_access = m.group(1)
            break
except OSError:
    pass

def phase(lo, hi):
    chosen = [s for s in slices if s["start"] >= lo and s["start"] < hi]
    if not chosen:
        return None
    req = sum(s["req"] for s in chosen)
    span = sum(s["req"] / s["rps"] for s in chosen if s["rps"] > 0)
    p50 = [s["p50"] for s in chosen if s["p50"] is not None]
    p99 = [s["p99"] for s in chosen if s["p99"] is not None]
    return dict(n=len(chosen), req=req, rps=req / span if span else 0,
                p50=statistics.median(p50) if p50 else float("nan"),
                p99=statistics.median(p99) if p99 else float("nan"),
                p99max=max(p99) if p99 else float("nan"),
                err=sum(s["err"] for s in chosen), s5=sum(s["s5"] for s in chosen))

total_req = sum(s["req"] for s in slices)
total_s5 = sum(s["s5"] for s in slices)
total_err = sum(s["err"] for s in slices)
total_502 = sum(s["s502"] for s in slices)
total_504 = sum(s["s504"] for s in slices)
bad = [s for s in slices if s["s5"] or s["err"]]
after_removal = sum(s["s5"] + s["err"] for s in slices if removed is not None and s["start"] > removed)

def fmt_t(t):
    return "—" if t is None else f"{t:.1f} s"

out = []
w = out.append
w("# Three tiers: margay in front of three application servers, one lost and brought back")
w("")
w(f"{machine}. margay {version}.")
w("")
link = ("a veth link with no added delay (this kernel has no netem qdisc)" if delay == "none"
        else f"a veth link with {delay} of netem delay on each end")
w(f"The front (margay, one event loop, static files from `htdocs/` and `--proxy /api/=` the three instances, "
  f"`--proxy-health-check /api/todos`) on 127.0.0.1, pinned to core 0; three instances of `examples/embedded`, "
  f"each in its own network namespace behind {link}, "
  f"at {net}.1.2, {net}.2.2 and {net}.3.2, also on core 0; wrk on core 1 with {conns} connections and "
  f"`scripts/three-tier.lua` (per ten requests: four `GET /api/todos`, two `GET /api/todos/1`, three "
  f"static `GET /index.html`, one `POST /api/todos` the application answers `400`), run as "
  f"{len(slices)} back-to-back wrk runs of {slice_s} s over {duration} s. app2 got SIGKILL at "
  f"{killed:.1f} s and was started again at {restart_at:.0f} s (answering at {restarted:.1f} s).")
w("")
w("## Summary")
w("")
w(f"- Requests served: {total_req:,} in {duration} s.")
w(f"- Errors: {total_s5} answers of 5xx ({total_502} of them 502, {total_504} 504) and {total_err} socket errors"
  + (", all in " + ", ".join(f"the run from {s['start']:.1f} to {s['end']:.1f} s ({s['s5']} 5xx, {s['err']} socket)" for s in bad) if bad else "") + ".")
w(f"- The front stopped sending to app2: its state left `up` in the status poll at {fmt_t(removed)} "
  f"({'%.1f s' % (removed - killed) if removed is not None else '—'} after the kill). "
  f"Errors in runs that started after that: {after_removal}.")
w(f"- The restarted app2 was `up` again at {fmt_t(back_up)} and took traffic again (its request count moved) "
  f"at {fmt_t(took_traffic)}, {'%.1f s' % (took_traffic - restarted) if took_traffic is not None else '—'} after it answered"
  + (f"; its first access-log line is stamped {first_access}" if first_access else "") + ".")
if polls:
    last = polls[-1][1]
    w("- The front's counters at the end, per instance (requests sent, failed, and retried on another instance): "
      + "; ".join(f"app{i + 1} {last[a].get('requests', 0):,} sent, {last[a].get('failures', 0)} failed, "
                  f"{last[a].get('retried', 0)} retried" for i, a in enumerate(sorted(last))) + ".")
w("")
w("## Before, during and after")
w("")
w("| phase | runs | requests | req/s | p50 ms (median of runs) | p99 ms (median of runs) | p99 ms (worst run) | 5xx | socket errors |")
w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for name, lo, hi in [("before the kill", 0, killed), ("app2 dead", killed, restarted),
                     ("after the restart", restarted, duration + 1)]:
    p = phase(lo, hi)
    if p:
        w(f"| {name} | {p['n']} | {p['req']:,} | {p['rps']:.0f} | {p['p50']:.2f} | {p['p99']:.2f} | {p['p99max']:.2f} | {p['s5']} | {p['err']} |")
w("")
w("## Second by second")
w("")
w("Each wrk run, and the states and request counts (since the last poll) of the three instances in the status poll that followed its start.")
w("")
addrs = sorted({a for _, m in polls for a in m})
w("| run from (s) | req/s | p50 ms | p99 ms | 5xx | socket errors | " + " | ".join(f"app{i + 1} ({a.split(':')[0]})" for i, a in enumerate(addrs)) + " |")
w("| ---: | ---: | ---: | ---: | ---: | ---: |" + " --- |" * len(addrs))
for s in slices:
    idx = next((i for i, (t, _) in enumerate(polls) if t >= s["start"]), None)
    cells = []
    for a in addrs:
        if idx is None or idx == 0:
            cells.append("")
            continue
        now, before = polls[idx][1].get(a, {}), polls[idx - 1][1].get(a, {})
        moved = now.get("requests", 0) - before.get("requests", 0)
        cells.append(f"{now.get('state', '?')} +{moved}")
    p50 = f"{s['p50']:.2f}" if s["p50"] is not None else "—"
    p99 = f"{s['p99']:.2f}" if s["p99"] is not None else "—"
    w(f"| {s['start']:.1f} | {s['rps']:.0f} | {p50} | {p99} | {s['s5']} | {s['err']} | " + " | ".join(cells) + " |")
w("")
w("## Events")
w("")
for t, what in events:
    w(f"- {t:.1f} s: {what}")
w("")
w("The front's log (warnings and health-check changes):")
w("")
w("```")
lines = [l.rstrip() for l in open(front_log, errors="replace") if "upstream" in l]
for line in lines[:40]:
    w(line)
if len(lines) > 40:
    w(f"... and {len(lines) - 40} more")
w("```")
print("\n".join(out))
PY
mv "$SCRATCH/report.md" "$OUT"
echo
cat "$OUT"
echo
echo "Wrote $OUT"
