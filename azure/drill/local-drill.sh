#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The local eviction drill (make demo): a Beethoven cluster on 127.0.0.x,
# a mock Azure IMDS, one Spot eviction, and a timeline of what happened.
#
# It starts beethoven-imds-mock and N daemons in Azure mode, waits for the
# cluster to form and place its roles (web x1, worker x2), schedules a
# Preempt for the VM of a node that holds roles and follows the drain: the
# node hands its roles over, approves the event, and the mock ends it with
# SIGKILL as a real eviction would. PASS (exit 0) when every role of that
# node ran on other nodes before NotBefore and the counts are whole again;
# FAIL (exit 1) says why. Usage errors exit 2. See azure/drill/README.md.
#
# Needs bash, coreutils, python3 (JSON parsing only) and drill-lib.sh next
# to it. Talks only to 127.0.0.0/8. Every process it starts is ended by pid
# when it exits.

set -euo pipefail

PROG=local-drill.sh
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$SCRIPT_DIR/../.." && pwd -P)
[[ -r $SCRIPT_DIR/drill-lib.sh ]] || { echo "$PROG: cannot read $SCRIPT_DIR/drill-lib.sh (it belongs next to $PROG)" >&2; exit 1; }
# shellcheck source-path=SCRIPTDIR source=drill-lib.sh
. "$SCRIPT_DIR/drill-lib.sh"

usage() {
    cat <<EOF
usage: $PROG [--build-dir DIR] [--port P] [--nodes N] [--notice S] [--keep]

Runs a Spot eviction drill on this machine: beethoven-imds-mock and N
beethovend nodes on 127.0.0.1..N, roles web x1 and worker x2, one Preempt
for a node holding roles, and a timeline of the drain. Exit 0 PASS, 1 FAIL,
2 bad usage.

  --build-dir DIR  build tree holding src/beethovend, src/beethovenctl and
                   src/beethoven-imds-mock (default: $REPO/build)
  --port P         listener_port of the nodes; Raft uses P+1, the mock
                   listens on 127.0.0.1:P+5 (default: the first of 3000,
                   3010 .. 3090 with all three free)
  --nodes N        cluster size, 3..6 (default 3)
  --notice S       seconds between the Preempt and its NotBefore, 1..900
                   (default 30, as Azure gives Spot VMs)
  --keep           keep the work directory (logs, data dirs) at the end
  -h, --help       show this help
EOF
}

# --- options -----------------------------------------------------------------

BUILD_DIR=$REPO/build
PORT=""
NODES=3
NOTICE=30
KEEP=0

is_uint() {
    [[ $1 =~ ^[0-9]{1,6}$ ]]
}

while [[ $# -gt 0 ]]; do
    case $1 in
    --build-dir)
        need_value "$@"
        BUILD_DIR=$2
        shift 2
        ;;
    --build-dir=*) BUILD_DIR=${1#*=}; shift ;;
    --port)
        need_value "$@"
        PORT=$2
        shift 2
        ;;
    --port=*) PORT=${1#*=}; shift ;;
    --nodes)
        need_value "$@"
        NODES=$2
        shift 2
        ;;
    --nodes=*) NODES=${1#*=}; shift ;;
    --notice)
        need_value "$@"
        NOTICE=$2
        shift 2
        ;;
    --notice=*) NOTICE=${1#*=}; shift ;;
    --keep) KEEP=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
    esac
done

if [[ -n $PORT ]] && ! { is_uint "$PORT" && ((10#$PORT >= 1 && 10#$PORT <= 65530)); }; then
    die_usage "--port: '$PORT' is not allowed (1..65530: the nodes use P and P+1, the mock P+5)"
fi
[[ -n $PORT ]] && PORT=$((10#$PORT))
if ! { is_uint "$NODES" && ((10#$NODES >= 3 && 10#$NODES <= 6)); }; then
    die_usage "--nodes: '$NODES' is not allowed (3..6: worker x2 needs two nodes besides the evicted one; 127.0.0.0/29 holds six)"
fi
NODES=$((10#$NODES))
if ! { is_uint "$NOTICE" && ((10#$NOTICE >= 1 && 10#$NOTICE <= 900)); }; then
    die_usage "--notice: '$NOTICE' is not allowed (whole seconds, 1..900)"
fi
NOTICE=$((10#$NOTICE))
[[ -d $BUILD_DIR ]] || die_usage "--build-dir: '$BUILD_DIR' is not a directory (run make build first)"
BUILD_DIR=$(cd "$BUILD_DIR" && pwd -P)

BEETHOVEND=$BUILD_DIR/src/beethovend
CTL=$BUILD_DIR/src/beethovenctl
MOCK=$BUILD_DIR/src/beethoven-imds-mock
for b in "$BEETHOVEND" "$CTL" "$MOCK"; do
    [[ -x $b ]] || die_usage "not built: $b (run make build, or give --build-dir)"
done
PYTHON=$(command -v python3) || die_usage "python3 is needed (it parses beethovenctl's JSON)"

# --- output ------------------------------------------------------------------

T_START=$(date +%s%3N)

# show NODE ARGS...: prints the command as an operator would type it and
# its output, indented.
show() {
    local i=$1 out rc=0
    shift
    out=$(ctl "$i" "$@" 2>&1) || rc=$?
    printf '    $ beethovenctl %-28s # on node%d\n' "$*" "$i"
    if [[ -n $out ]]; then
        while IFS= read -r l; do printf '      %s\n' "$l"; done <<<"$out"
    fi
    ((rc == 0)) || printf '      (exit status %d)\n' "$rc"
}

# --- times and processes -------------------------------------------------------

# epoch_ms SECONDS.FRACTION (the role log's time) -> milliseconds.
epoch_ms() {
    local s=${1%%.*} f=${1#*.}000
    [[ $1 == *.* ]] || f=000
    echo $((10#$s * 1000 + 10#${f:0:3}))
}

# alive PID: the process exists and is not a zombie.
alive() {
    local st
    st=$(cut -d' ' -f3 "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && $st != Z ]]
}

# ours PID: PID is alive and a child of this script or of one of its
# daemon wrappers, so a pid that may have been reused is never signalled.
# shellcheck disable=SC2317  # used by cleanup, run by the EXIT trap
ours() {
    local ppid w
    alive "$1" || return 1
    ppid=$(cut -d' ' -f4 "/proc/$1/stat" 2>/dev/null) || return 1
    [[ $ppid == "$$" ]] && return 0
    for w in "${WRAPS[@]}"; do [[ $ppid == "$w" ]] && return 0; done
    return 1
}

# port_free ADDR PORT: a listener could bind ADDR:PORT now.
port_free() {
    "$PYTHON" -c '
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
' "$1" "$2"
}

# ctl I ARGS...: beethovenctl on node I.
ctl() {
    local i=$1
    shift
    "$CTL" --socket "$WORK/node$i/ctl.sock" --timeout 2000 "$@"
}

# --- cleanup -------------------------------------------------------------------

WORK=""
PIDS=()        # every process this script started (daemons, the mock)
WRAPS=()       # the subshells waiting for the daemons
declare -A NODE_PID=() NODE_WRAP=()
MOCK_PID=""
ROLE_LOG=""

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    local rc=$? p deadline
    trap - EXIT INT TERM
    for p in "${PIDS[@]}"; do
        if ours "$p"; then kill -TERM "$p" 2>/dev/null || true; fi
    done
    deadline=$(($(now_ms) + 5000))
    for p in "${PIDS[@]}"; do
        while ours "$p" && (($(now_ms) < deadline)); do sleep 0.1; done
        if ours "$p"; then kill -KILL "$p" 2>/dev/null || true; fi
        wait "$p" 2>/dev/null || true
    done
    for p in "${WRAPS[@]}"; do wait "$p" 2>/dev/null || true; done
    # Role processes still running after their daemons are gone (a daemon
    # that died without stopping them): ended by the pid they logged, and
    # only if that pid still runs a role of this drill.
    if [[ -n $ROLE_LOG && -f $ROLE_LOG ]]; then
        local t kind node role pid
        while read -r t kind node role pid; do
            [[ $kind == start && $pid =~ ^[0-9]+$ ]] || continue
            if alive "$pid" &&
                [[ $(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) == *"$ROLE_LOG"* ]]; then
                kill -KILL "$pid" 2>/dev/null || true
            fi
        done <"$ROLE_LOG"
    fi
    if [[ -n $WORK && -d $WORK ]]; then
        if ((KEEP)); then
            say "kept $WORK (logs: node*.log, mock.log, roles.log)"
        else
            rm -rf -- "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; say "interrupted: stopping everything"; exit 130' INT
trap 'say "terminated: stopping everything"; exit 143' TERM

fail_early() {
    say "FAIL: $*"
    dump_logs
    exit 1
}

dump_logs() {
    local f
    for f in "$WORK"/node*.log "$WORK/mock.log"; do
        [[ -f $f ]] || continue
        echo "---- last lines of $f ----"
        tail -n 12 "$f" | cut -c1-220
    done
    ((KEEP)) || echo "(rerun with --keep to keep $WORK)"
}

# --- ports and work directory ----------------------------------------------------

ADDRS=()
for ((i = 1; i <= NODES; i++)); do ADDRS+=("127.0.0.$i"); done

ports_free() {
    local p=$1 a
    for a in "${ADDRS[@]}"; do
        port_free "$a" "$p" && port_free "$a" $((p + 1)) || return 1
    done
    port_free 127.0.0.1 $((p + 5))
}

if [[ -n $PORT ]]; then
    ports_free "$PORT" || {
        echo "$PROG: --port $PORT: $PORT, $((PORT + 1)) or (on 127.0.0.1) $((PORT + 5)) is in use on 127.0.0.1..$NODES" >&2
        exit 1
    }
else
    for p in 3000 3010 3020 3030 3040 3050 3060 3070 3080 3090; do
        if ports_free "$p"; then PORT=$p; break; fi
    done
    [[ -n $PORT ]] || {
        echo "$PROG: no free port among 3000, 3010 .. 3090 (each needs P, P+1 on 127.0.0.1..$NODES and P+5 on 127.0.0.1); give --port" >&2
        exit 1
    }
fi
MOCK_PORT=$((PORT + 5))
MOCK_URL=http://127.0.0.1:$MOCK_PORT

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bt-drill.XXXXXX")
ROLE_LOG=$WORK/roles.log
mkdir -p "$WORK/pids"
: >"$ROLE_LOG"
echo '{}' >"$WORK/empty.json"
SECRET=$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')

# The role command: role_logger.py of the cluster tests when it is there,
# else a shell loop that writes the same "<time> start|stop <node> <role>
# <pid>" lines.
LOGGER=$REPO/tests/cluster/role_logger.py
if [[ -f $LOGGER ]]; then
    role_cmd() {
        printf '"command": "%s", "args": ["%s", "%s"]' "$PYTHON" "$LOGGER" "$ROLE_LOG"
    }
else
    cat >"$WORK/role.sh" <<'EOF'
#!/bin/sh
# A drill role: logs its start and stop, otherwise sleeps.
log=$1
w() {
    printf '%s %s %s %s %s\n' "$(date +%s.%N)" "$1" "${BEETHOVEN_NODE_NAME:--}" \
        "${BEETHOVEN_ROLE:--}" "$$" >>"$log"
}
trap 'w stop; exit 0' TERM
w start
while :; do sleep 1 & wait $!; done
EOF
    role_cmd() {
        printf '"command": "/bin/sh", "args": ["%s", "%s"]' "$WORK/role.sh" "$ROLE_LOG"
    }
fi
ROLES="[{\"name\": \"web\", $(role_cmd), \"instances\": 1, \"stop_timeout_ms\": 2000},
 {\"name\": \"worker\", $(role_cmd), \"instances\": 2, \"stop_timeout_ms\": 2000}]"
declare -A WANT=([web]=1 [worker]=2)

# The mock's --on-start: what the platform does to an evicted VM. It kills
# the daemon of the VM's address by the pid this script wrote, and only if
# that pid still runs our beethovend.
cat >"$WORK/on-start.sh" <<EOF
#!/bin/sh
now=\$(date +%s%3N)
f="$WORK/pids/\$BT_MOCK_ADDRESS"
pid=\$(cat "\$f" 2>/dev/null || true)
# argv[0], not /proc/PID/exe: a rebuild while the drill runs makes exe
# read "... (deleted)".
if [ -n "\$pid" ] && [ "\$(tr '\\0' '\\n' <"/proc/\$pid/cmdline" 2>/dev/null | head -n 1)" = "$BEETHOVEND" ]; then
    kill -KILL "\$pid" && what=killed || what=kill_failed
else
    what=no_daemon
fi
echo "\$now \$what \$BT_MOCK_VM \$BT_MOCK_ADDRESS \${pid:--} \$BT_MOCK_EVENT_TYPE \$BT_MOCK_REASON" >>"$WORK/on-start.log"
EOF
: >"$WORK/on-start.log"

# --- start ---------------------------------------------------------------------------

echo "Beethoven eviction drill (local): $NODES nodes, a mock Azure IMDS, one Spot eviction"
note "binaries  $BUILD_DIR/src"
note "nodes     127.0.0.1..$NODES port $PORT (Raft $((PORT + 1))), cluster_net 127.0.0.0/29"
note "mock      $MOCK_URL"
note_work_dir
echo

say "starting the mock IMDS; its --on-start SIGKILLs an evicted VM's daemon"
note "\$ beethoven-imds-mock --listen 127.0.0.1:$MOCK_PORT --on-start 'sh on-start.sh'"
"$MOCK" --listen "127.0.0.1:$MOCK_PORT" --on-start "sh '$WORK/on-start.sh'" \
    </dev/null >"$WORK/mock.log" 2>&1 &
MOCK_PID=$!
PIDS+=("$MOCK_PID")
deadline=$(($(now_ms) + 5000))
until "$MOCK" list --url "$MOCK_URL" >/dev/null 2>&1; do
    alive "$MOCK_PID" || fail_early "beethoven-imds-mock exited at start (see mock.log)"
    (($(now_ms) < deadline)) || fail_early "beethoven-imds-mock did not answer on $MOCK_URL within 5 s"
    sleep 0.1
done

# Daemons get a clean environment: no BEETHOVEN_* of the caller's.
ENV_CLEAN=()
while IFS= read -r v; do
    [[ $v == BEETHOVEN_* ]] && ENV_CLEAN+=(-u "$v")
done < <(compgen -e)

# Each daemon runs under a subshell that waits for it: a daemon killed by a
# signal (the eviction) is reaped there, so bash prints no "Killed" notice
# in the middle of the timeline, and the subshell's exit status is the
# daemon's. The daemon's own pid goes to pids/ADDR for on-start.sh.
start_node() {
    local i=$1 addr=127.0.0.$1 deadline
    mkdir -p "$WORK/node$i/data"
    (
        trap - EXIT INT TERM
        env "${ENV_CLEAN[@]}" \
            BEETHOVEN_CONFIG="$WORK/empty.json" \
            BEETHOVEN_CLUSTER_NAME=drill \
            BEETHOVEN_CLUSTER_NET=127.0.0.0 \
            BEETHOVEN_CLUSTER_NET_MASK=29 \
            BEETHOVEN_LISTENER_PORT="$PORT" \
            BEETHOVEN_BIND_ADDRESS="$addr" \
            BEETHOVEN_NODE_NAME="node$i" \
            BEETHOVEN_SECRET="$SECRET" \
            BEETHOVEN_DATA_DIR="$WORK/node$i/data" \
            BEETHOVEN_CONTROL_SOCKET="$WORK/node$i/ctl.sock" \
            BEETHOVEN_HOOKS_DIR="$WORK/hooks.d" \
            BEETHOVEN_LOG_LEVEL=info \
            BEETHOVEN_AZURE=on \
            BEETHOVEN_IMDS_URL="$MOCK_URL" \
            BEETHOVEN_ROLES="$ROLES" \
            "$BEETHOVEND" </dev/null >"$WORK/node$i.log" 2>&1 &
        echo "$!" >"$WORK/pids/$addr.tmp"
        mv "$WORK/pids/$addr.tmp" "$WORK/pids/$addr"
        wait "$!"
    ) 2>/dev/null &
    NODE_WRAP[$i]=$!
    WRAPS+=("$!")
    deadline=$(($(now_ms) + 5000))
    until [[ -s $WORK/pids/$addr ]]; do
        (($(now_ms) < deadline)) || fail_early "node$i's beethovend did not start"
        sleep 0.05
    done
    NODE_PID[$i]=$(<"$WORK/pids/$addr")
    PIDS+=("${NODE_PID[$i]}")
}

say "starting $NODES nodes with azure=on, imds_url=$MOCK_URL, roles web x1 and worker x2"
for ((i = 1; i <= NODES; i++)); do start_node "$i"; done

# converged: every node ready, clustered, one cluster id, N members alive.
converged() {
    local i s n
    declare -A ids=()
    for ((i = 1; i <= NODES; i++)); do
        s=$(ctl "$i" --json status 2>/dev/null) || return 1
        [[ $(pyj 'd.get("ready") is True and d.get("mode") == "clustered"' <<<"$s") == True ]] || return 1
        ids["$(pyj 'd.get("cluster_id")' <<<"$s")"]=1
        n=$(ctl "$i" --json nodes 2>/dev/null) || return 1
        [[ $(pyj 'sum(1 for m in d if m.get("status") == "alive")' <<<"$n") == "$NODES" ]] || return 1
    done
    ((${#ids[@]} == 1))
}

# role_summary I: "role=holder,holder ..." of node I's table, sorted.
role_summary() {
    ctl "$1" --json roles 2>/dev/null | pyj '" ".join(sorted("%s=%s" % (e.get("role"), ",".join(sorted(e.get("holders") or []))) for e in d))'
}

# running_roles: "role=node,node ..." from the role log: instances whose
# start line has no end line and whose pid is alive.
running_roles() {
    declare -A run=()
    local t kind node role pid k r out=""
    while read -r t kind node role pid; do
        case $kind in
        start) run["$role $node $pid"]=1 ;;
        stop | exit) unset 'run["$role $node $pid"]' ;;
        esac
    done <"$ROLE_LOG"
    declare -A by=()
    for k in "${!run[@]}"; do
        read -r role node pid <<<"$k"
        alive "$pid" || continue
        by[$role]+="${by[$role]:+,}$node"
    done
    for r in $(printf '%s\n' "${!by[@]}" | sort); do
        out+="${out:+ }$r=$(tr ',' '\n' <<<"${by[$r]}" | sort | paste -sd,)"
    done
    echo "$out"
}

# placed I [EXCLUDE]: node I's table gives every role its full count,
# never to node EXCLUDE, and the role processes run exactly there.
placed() {
    local sum r e h x
    local -a hs
    sum=$(role_summary "$1") || return 1
    for r in "${!WANT[@]}"; do
        h=""
        for e in $sum; do [[ $e == "$r="* ]] && h=${e#*=}; done
        IFS=, read -r -a hs <<<"$h"
        ((${#hs[@]} == WANT[$r])) || return 1
        for x in "${hs[@]}"; do [[ $x != "${2:-}" ]] || return 1; done
    done
    [[ $(running_roles) == "$sum" ]]
}

t0=$(now_ms)
deadline=$((t0 + 30000))
until converged; do
    for ((i = 1; i <= NODES; i++)); do
        alive "${NODE_PID[$i]}" || fail_early "node$i's beethovend exited at start (see node$i.log)"
    done
    (($(now_ms) < deadline)) || fail_early "the $NODES nodes did not form one cluster within 30 s"
    sleep 0.2
done
t1=$(now_ms)
say "converged: one cluster, $NODES members alive ($(((t1 - t0) / 1000)).$((((t1 - t0) % 1000) / 100)) s)"
deadline=$((t1 + 30000))
until placed 1; do
    (($(now_ms) < deadline)) || fail_early "roles were not placed within 30 s (node1 sees: $(role_summary 1 || true); running: $(running_roles))"
    sleep 0.2
done
t2=$(now_ms)
say "roles placed and running ($(((t2 - t0) / 1000)).$((((t2 - t0) % 1000) / 100)) s after start)"
show 1 roles

# --- the timeline ------------------------------------------------------------------

# row, flush_rows, kv and new_lines are drill-lib.sh's; T0 and NB are set
# when the event is scheduled.
TL_WHERE_W=6 # the timeline's "where": node1 .. node6, mock, drill

# --- pick the node to evict ------------------------------------------------------------

# The node with the most roles; among equals the Raft leader, so the drill
# shows leadership moving too; then the lowest address.
DOOMED=""
best=-1
for ((i = 1; i <= NODES; i++)); do
    s=$(ctl "$i" --json status) || fail_early "beethovenctl status failed on node$i"
    score=$(pyj 'len(d.get("roles_here") or []) * 2 + ((d.get("raft") or {}).get("state") == "leader")' <<<"$s")
    if ((score > best)); then
        best=$score
        DOOMED=$i
    fi
done
DOOMED_ADDR=127.0.0.$DOOMED
DOOMED_PID=${NODE_PID[$DOOMED]}
s=$(ctl "$DOOMED" --json status)
read -r -a DOOMED_ROLES <<<"$(pyj '" ".join(sorted(d.get("roles_here") or []))' <<<"$s")"
DOOMED_LEADER=$(pyj '(d.get("raft") or {}).get("state") == "leader"' <<<"$s")
((${#DOOMED_ROLES[@]} > 0)) || fail_early "no node holds a role"
VM=$(ctl "$DOOMED" --json azure 2>/dev/null | pyj '(d.get("vm") or {}).get("name") if isinstance(d.get("vm"), dict) else d.get("vm")' 2>/dev/null || true)
[[ -n $VM ]] || VM=beethoven-vmss_$DOOMED
WATCH=1
((WATCH == DOOMED)) && WATCH=2
echo
say "evicting node$DOOMED: VM $VM at $DOOMED_ADDR, pid $DOOMED_PID, holds ${DOOMED_ROLES[*]}$([[ $DOOMED_LEADER == True ]] && echo ', Raft leader')"
# The logs are followed from here on; what came before is the placement
# already shown.
declare -A RUN_NOW=() # "role node pid" of running instances, from the role log
for f in "$WORK"/node*.log "$WORK/mock.log" "$WORK/on-start.log"; do
    new_lines "$f"
done
new_lines "$ROLE_LOG"
for line in "${NEW[@]}"; do
    read -r t kind node role pid <<<"$line"
    case $kind in
    start) RUN_NOW["$role $node $pid"]=1 ;;
    stop | exit) unset 'RUN_NOW["$role $node $pid"]' ;;
    esac
done
note "\$ beethoven-imds-mock schedule Preempt $VM --notice $NOTICE --url $MOCK_URL"
sched=$("$MOCK" schedule Preempt "$VM" --notice "$NOTICE" --url "$MOCK_URL" 2>&1) ||
    fail_early "beethoven-imds-mock schedule failed: $sched"
EV_ID=$(pyj 'd["events"][0]["id"]' <<<"$sched") || fail_early "cannot read the event id from: $sched"
EV_NB=$(pyj 'd["events"][0]["not_before"]' <<<"$sched")
EV_AT=$(pyj 'd["events"][0]["appear_at"]' <<<"$sched")
T0=$(iso_ms "$EV_AT")
NB=$(iso_ms "$EV_NB")
note "  event $EV_ID, NotBefore $EV_NB"
echo

# --- follow ------------------------------------------------------------------------------

say "timeline (t=0: the event is visible in the mock; 'left': time until NotBefore)"
timeline_head 50

row "$T0" mock "event ${EV_ID:0:8} visible: Preempt of $VM, NotBefore $(date -u -d "$EV_NB" +%T) UTC"
declare -A REPLACED=()   # role -> ms when it ran on enough other nodes
declare -A SPAWNED=()    # role -> ms when another node's beethovend started it

STEPS=()
APPROVED_MS=""
STARTED_MS=""
STARTED_REASON=""
KILLED_MS=""
KILL_NOTE=""
DEAD_MS=""
DEAD_RC=""
FAILED_SEEN_MS=""
TABLE_OK_MS=""

count_on_others() {
    local role=$1 k n=0 r nd p
    for k in "${!RUN_NOW[@]}"; do
        read -r r nd p <<<"$k"
        [[ $r == "$role" && $nd != "node$DOOMED" ]] && n=$((n + 1))
    done
    echo "$n"
}

follow_once() {
    local line t step r what i

    # beethovenctl first, the logs after it: every log line older than the
    # observation is then read in this round and the rows come out in order.
    if [[ -z $TABLE_OK_MS ]]; then
        if placed "$WATCH" "node$DOOMED"; then
            t=$(now_ms)
            TABLE_OK_MS=$t
            row "$t" "node$WATCH" "\$ beethovenctl roles: $(role_summary "$WATCH") (node$DOOMED holds none)"
        fi
    fi

    # The daemons' logs: the evicted node's steps, every node's role
    # starts and stops, and one survivor's view of the evicted node.
    for ((i = 1; i <= NODES; i++)); do
        new_lines "$WORK/node$i.log"
        for line in "${NEW[@]}"; do
            case $line in
            *" event=eviction_step "*)
                ((i == DOOMED)) || continue
                step=$(kv "$line" step)
                STEPS+=("$step")
                t=$(iso_ms "$(kv "$line" ts)")
                row "$t" "node$i" "$(printf '%-24s elapsed_ms=%s' "$step" "$(kv "$line" elapsed_ms)")"
                ;;
            *" event=eviction_drain_refused "* | *" event=eviction_approve_failed "*)
                ((i == DOOMED)) || continue
                t=$(iso_ms "$(kv "$line" ts)")
                row "$t" "node$i" "$(kv "$line" event): $(kv "$line" reason)"
                ;;
            *" event=role_state "*)
                r=$(kv "$line" role)
                what=$(kv "$line" to)
                [[ $what == running || $what == stopped ]] || continue
                t=$(iso_ms "$(kv "$line" ts)")
                if [[ $what == running ]]; then
                    row "$t" "node$i" "role $r started (pid $(kv "$line" pid))"
                else
                    row "$t" "node$i" "role $r stopped"
                fi
                if [[ $what == running && $i != "$DOOMED" && -z ${SPAWNED[$r]:-} ]]; then
                    SPAWNED[$r]=$t
                fi
                ;;
            *" event=member_state "*)
                [[ $i == "$WATCH" && $(kv "$line" addr) == "$DOOMED_ADDR" ]] || continue
                r=$(kv "$line" to)
                t=$(iso_ms "$(kv "$line" ts)")
                row "$t" "node$i" "member node$DOOMED: $(kv "$line" from) -> $r"
                [[ $r == failed || $r == left ]] && FAILED_SEEN_MS=$t
                ;;
            esac
        done
    done

    # The role processes' own lines: a start is the proof that the role
    # runs (the daemon's role_state says it was spawned).
    new_lines "$ROLE_LOG"
    for line in "${NEW[@]}"; do
        read -r t kind node role pid <<<"$line"
        t=$(epoch_ms "$t")
        case $kind in
        start) RUN_NOW["$role $node $pid"]=1 ;;
        stop | exit) unset 'RUN_NOW["$role $node $pid"]' ;;
        *) continue ;;
        esac
        [[ $kind == start ]] || continue
        row "$t" "$node" "role $role up: its process logged its start"
        if [[ -z ${REPLACED[$role]:-} ]] && [[ " ${DOOMED_ROLES[*]} " == *" $role "* ]] &&
            (($(count_on_others "$role") >= WANT[$role])); then
            REPLACED[$role]=$t
        fi
    done

    new_lines "$WORK/mock.log"
    for line in "${NEW[@]}"; do
        [[ $(kv "$line" event_id)$(kv "$line" id) == *"$EV_ID"* ]] || continue
        t=$(iso_ms "$(kv "$line" ts)")
        case $line in
        *" event=approval "*)
            APPROVED_MS=$t
            row "$t" mock "approval (StartRequests) from $(kv "$line" vm): $(kv "$line" result)"
            ;;
        *" event=event_started "*)
            STARTED_MS=$t
            STARTED_REASON=$(kv "$line" reason)
            row "$t" mock "event Started (reason: $STARTED_REASON): the platform takes the VM"
            ;;
        esac
    done

    new_lines "$WORK/on-start.log"
    for line in "${NEW[@]}"; do
        read -r t what vm addr pid _ <<<"$line"
        [[ $addr == "$DOOMED_ADDR" ]] || continue
        KILLED_MS=$t
        KILL_NOTE=$what
        case $what in
        killed) row "$t" mock "on-start: kill -KILL $pid (node$DOOMED's beethovend, VM $vm)" ;;
        *) row "$t" mock "on-start: did not kill node$DOOMED ($what)" ;;
        esac
    done

    if [[ -z $DEAD_MS ]] && ! alive "$DOOMED_PID"; then
        DEAD_MS=$(now_ms)
        DEAD_RC=0
        wait "${NODE_WRAP[$DOOMED]}" 2>/dev/null || DEAD_RC=$?
    fi

    flush_rows
}

FOLLOW_END=$((NB + 15000))
while :; do
    follow_once
    # Done once the VM is gone, the cluster has noticed and the roles are
    # whole without it.
    [[ -n $DEAD_MS && -n $FAILED_SEEN_MS && -n $TABLE_OK_MS ]] && break
    if (($(now_ms) > FOLLOW_END)); then
        row "$(now_ms)" drill "stopped following: NotBefore + 15 s has passed"
        flush_rows
        break
    fi
    sleep 0.2
done
END_MS=$(now_ms)

# --- verdict -------------------------------------------------------------------------------

echo
say "after the eviction"
show "$WATCH" roles
note "\$ beethoven-imds-mock approvals --url $MOCK_URL"
"$MOCK" approvals --url "$MOCK_URL" 2>&1 |
    pyj '"\n".join("      %s %s from %s (%s)" % (a.get("at"), a.get("event_id"), a.get("vm"), a.get("address")) for a in d.get("approvals", [])) or "      (none)"' || true
echo

WHY=()
for r in "${DOOMED_ROLES[@]}"; do
    if [[ -z ${REPLACED[$r]:-} ]]; then
        WHY+=("role $r of node$DOOMED never ran on ${WANT[$r]} other node(s)")
    elif ((REPLACED[$r] >= NB)); then
        WHY+=("role $r ran elsewhere only $(secs $((REPLACED[$r] - NB))) after NotBefore")
    fi
done
[[ -n $STARTED_MS ]] || WHY+=("the mock never started the event")
[[ $KILL_NOTE == killed ]] || WHY+=("the mock's on-start did not end node$DOOMED (${KILL_NOTE:-it never ran})")
[[ -n $DEAD_MS ]] || WHY+=("node$DOOMED's beethovend is still running")
[[ -n $TABLE_OK_MS ]] || WHY+=("node$WATCH's table never gave every role its full count without node$DOOMED (it shows: $(role_summary "$WATCH" || echo '?'))")
[[ -n $FAILED_SEEN_MS ]] || WHY+=("node$WATCH never marked node$DOOMED failed")
final_ok=0
for ((i = 1; i <= NODES; i++)); do
    [[ $i == "$DOOMED" ]] && continue
    if ! placed "$i" "node$DOOMED"; then
        WHY+=("at the end node$i sees roles $(role_summary "$i" || echo '?') with processes running as $(running_roles)")
        final_ok=1
        break
    fi
done

# The summary lines.
if [[ -n $APPROVED_MS ]]; then
    item "approved" "t=$((APPROVED_MS - T0)) ms, $(vs_nb "$APPROVED_MS")"
else
    item "approved" "no: the event started at NotBefore"
fi
late=()
for r in "${DOOMED_ROLES[@]}"; do
    if [[ -n ${REPLACED[$r]:-} ]]; then
        item "$r running elsewhere" "t=$((REPLACED[$r] - T0)) ms, $(vs_nb "${REPLACED[$r]}")"
    fi
    if [[ -n $APPROVED_MS && -n ${SPAWNED[$r]:-} ]] && ((SPAWNED[$r] > APPROVED_MS)); then
        late+=("$r +$((SPAWNED[$r] - APPROVED_MS)) ms")
    fi
done
if [[ -n $KILLED_MS ]]; then
    item "node$DOOMED ended" "t=$((KILLED_MS - T0)) ms (beethovend exit status ${DEAD_RC:-?})"
fi
if ((final_ok == 0)); then
    c=""
    for r in $(printf '%s\n' "${!WANT[@]}" | sort); do c+="$r ${WANT[$r]}/${WANT[$r]}, "; done
    item "counts" "${c}on $((NODES - 1)) nodes"
fi
item "drill took" "$(secs $((END_MS - T_START))) in all"
if ((${#late[@]})); then
    note "note: node$DOOMED approved before another node had started its roles"
    note "      (${late[*]} after the approval)"
fi
echo
verdict "node$DOOMED" "${DOOMED_ROLES[@]}" && exit 0
dump_logs
exit 1
