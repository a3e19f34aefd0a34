#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# The eviction drill on a real Azure Spot scale set: the same drill as
# local-drill.sh, with `az vmss simulate-eviction` in place of the mock.
#
# It reads every instance's state with `beethovenctl --json` over ssh (or
# `az vmss run-command invoke` with --via run-command), picks an instance
# holding roles (or the one given), asks Azure to evict it, follows the
# daemons' logs (journalctl) and the instance's power state, prints a
# timeline and says PASS when every role of the evicted node ran on other
# nodes before NotBefore and the role counts are whole again.
#
# It EVICTS A REAL VM: it does nothing without --yes. It is not run by the
# tests; it needs the az CLI, logged in (az login) with rights on the scale
# set, ssh access to the instances (or run-command rights) and drill-lib.sh
# next to it. See azure/drill/README.md. Exit status: 0 PASS, 1 FAIL or
# runtime error, 2 bad usage.

set -euo pipefail

PROG=azure-drill.sh
DRILL_LIB=$(dirname "${BASH_SOURCE[0]}")/drill-lib.sh
[[ -r $DRILL_LIB ]] || { echo "$PROG: cannot read $DRILL_LIB (it belongs next to $PROG)" >&2; exit 1; }
# shellcheck source-path=SCRIPTDIR source=drill-lib.sh
. "$DRILL_LIB"

usage() {
    cat <<EOF
usage: $PROG -g RG -n VMSS [--instance-id N] [--via ssh|run-command]
       [--ssh-user USER] [--jump [USER@]HOST[:PORT]] [--ssh-key FILE]
       [--ssh-option OPT]... [--address ID=IP]... [--unit NAME]
       [--socket PATH] [--no-sudo] [--subscription SUB] [--timeout S]
       [--keep] --yes

Evicts one instance of a Spot scale set running beethovend with
'az vmss simulate-eviction' and checks that its roles ran on other nodes
before the Preempt event's NotBefore. Exit 0 PASS, 1 FAIL or error, 2 usage.

  -g, --resource-group RG   the scale set's resource group (required)
  -n, --vmss NAME           the scale set (required)
  --instance-id N           the instance to evict (default: the one holding
                            the most roles, preferring the Raft leader)
  --via ssh|run-command     how to reach the instances (default ssh);
                            run-command is slow (tens of seconds a call), so
                            the evicted node's steps are polled, not followed
  --ssh-user USER           ssh login (default: \$USER)
  --jump [USER@]HOST[:PORT] ssh jump host (bastion VM with a public address)
  --ssh-key FILE            ssh identity file
  --ssh-option OPT          extra 'ssh -o OPT' (repeatable)
  --address ID=IP           the private address of instance ID (repeatable;
                            default: read from 'az vmss nic list')
  --unit NAME               systemd unit of beethovend (default beethoven)
  --socket PATH             control socket on the instances (default: the
                            daemon's, /run/beethoven/beethoven.sock)
  --no-sudo                 run beethovenctl and journalctl without sudo -n
  --subscription SUB        az --subscription
  --timeout S               give up following after S seconds (default 180)
  --keep                    keep the work directory with the collected logs
  --yes                     really evict the instance
  -h, --help                show this help
EOF
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

# --- options -------------------------------------------------------------------

RG=""
VMSS=""
IID=""
VIA=ssh
SSH_USER=${USER:-}
JUMP=""
SSH_KEY=""
SSH_EXTRA=()
UNIT=beethoven
SOCKET=""
SUDO="sudo -n"
SUB=""
TIMEOUT=180
KEEP=0
YES=0
declare -A IP=()

while [[ $# -gt 0 ]]; do
    case $1 in
    -g | --resource-group) need_value "$@"; RG=$2; shift 2 ;;
    -n | --vmss) need_value "$@"; VMSS=$2; shift 2 ;;
    --instance-id) need_value "$@"; IID=$2; shift 2 ;;
    --via) need_value "$@"; VIA=$2; shift 2 ;;
    --ssh-user) need_value "$@"; SSH_USER=$2; shift 2 ;;
    --jump) need_value "$@"; JUMP=$2; shift 2 ;;
    --ssh-key) need_value "$@"; SSH_KEY=$2; shift 2 ;;
    --ssh-option) need_value "$@"; SSH_EXTRA+=(-o "$2"); shift 2 ;;
    --address)
        need_value "$@"
        [[ $2 =~ ^([0-9]+)=([0-9]{1,3}(\.[0-9]{1,3}){3})$ ]] ||
            die_usage "--address: '$2' is not ID=IPv4 (e.g. 3=10.0.0.7)"
        IP[${BASH_REMATCH[1]}]=${BASH_REMATCH[2]}
        shift 2
        ;;
    --unit) need_value "$@"; UNIT=$2; shift 2 ;;
    --socket) need_value "$@"; SOCKET=$2; shift 2 ;;
    --no-sudo) SUDO=""; shift ;;
    --subscription) need_value "$@"; SUB=$2; shift 2 ;;
    --timeout) need_value "$@"; TIMEOUT=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --yes) YES=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) die_usage "unknown argument '$1'" ;;
    esac
done

[[ -n $RG ]] || die_usage "the resource group is required (-g RG)"
[[ -n $VMSS ]] || die_usage "the scale set is required (-n VMSS)"
[[ -z $IID || $IID =~ ^[0-9]+$ ]] || die_usage "--instance-id: '$IID' is not an instance id (a number)"
[[ $VIA == ssh || $VIA == run-command ]] || die_usage "--via: '$VIA' is not allowed (ssh or run-command)"
{ [[ $TIMEOUT =~ ^[0-9]{1,5}$ ]] && ((10#$TIMEOUT >= 30)); } || die_usage "--timeout: '$TIMEOUT' is not allowed (30..99999 seconds)"
TIMEOUT=$((10#$TIMEOUT))
[[ $VIA == run-command || -n $SSH_USER ]] || die_usage "--ssh-user is required (\$USER is not set)"
[[ -z $SOCKET || $SOCKET == /* ]] || die_usage "--socket: '$SOCKET' is not an absolute path"
[[ $UNIT =~ ^[A-Za-z0-9@._-]+$ ]] || die_usage "--unit: '$UNIT' is not a unit name"
[[ -z $SSH_KEY || -r $SSH_KEY ]] || die_usage "--ssh-key: cannot read '$SSH_KEY'"

command -v az >/dev/null || die "the az CLI is not installed (https://aka.ms/azure-cli)"
[[ $VIA == run-command ]] || command -v ssh >/dev/null || die "ssh is not installed"
PYTHON=$(command -v python3) || die "python3 is needed (it parses JSON)"

AZ=(az)
[[ -z $SUB ]] || AZ+=(--subscription "$SUB")

# --- work directory and remote commands -----------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bt-azure-drill.XXXXXX")
BG=() # background processes started here (ssh log followers)

# shellcheck disable=SC2317  # run by the EXIT trap
cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in "${BG[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${BG[@]}"; do wait "$p" 2>/dev/null || true; done
    if ((KEEP)); then
        say "kept $WORK (logs/ID.log: each instance's beethovend log)"
    else
        rm -rf -- "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; say "interrupted (the eviction, if asked for, goes on in Azure)"; exit 130' INT
trap 'say "terminated"; exit 143' TERM
mkdir -p "$WORK/logs"

SSH_OPTS=(-n -o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5
    -o StrictHostKeyChecking=accept-new)
[[ -z $JUMP ]] || SSH_OPTS+=(-J "$JUMP")
[[ -z $SSH_KEY ]] || SSH_OPTS+=(-i "$SSH_KEY")
SSH_OPTS+=("${SSH_EXTRA[@]}")

# The remote commands, words quoted for the remote shell.
CTL_REMOTE="$SUDO beethovenctl --timeout 5000"
[[ -z $SOCKET ]] || CTL_REMOTE+=" --socket $(printf '%q' "$SOCKET")"
JOURNAL_REMOTE="$SUDO journalctl -u $(printf '%q' "$UNIT") -o cat --no-pager"

# remote ID SCRIPT: runs the shell script SCRIPT on instance ID and prints
# its standard output; the exit status is the script's (255 or 1 when the
# instance cannot be reached).
remote() {
    local id=$1 script=$2 out rc
    if [[ $VIA == ssh ]]; then
        # shellcheck disable=SC2029  # the script is meant for the far side
        ssh "${SSH_OPTS[@]}" "$SSH_USER@${IP[$id]}" "$script"
        return
    fi
    # run-command returns one message: "Enable succeeded: \n[stdout]\n...
    # \n[stderr]\n..."; the script's status travels as a last stdout line.
    out=$("${AZ[@]}" vmss run-command invoke -g "$RG" -n "$VMSS" \
        --instance-id "$id" --command-id RunShellScript \
        --scripts "$script"$'\n'"echo \"__drill_rc=\$?\"" \
        --query 'value[0].message' -o tsv 2>"$WORK/run-command.err") || return 1
    out=${out#*\[stdout\]$'\n'}
    out=${out%%$'\n'\[stderr\]*}
    rc=${out##*__drill_rc=}
    out=${out%__drill_rc=*}
    printf '%s' "$out"
    [[ $rc =~ ^[0-9]+$ ]] || return 1
    return "$rc"
}

# --- the scale set ------------------------------------------------------------------

echo "Beethoven eviction drill (Azure): scale set $VMSS in $RG, via $VIA"
note_work_dir
echo

"${AZ[@]}" account show -o none 2>/dev/null || die "the az CLI is not logged in (run az login)"
note "\$ az vmss list-instances -g $RG -n $VMSS"
inst=$("${AZ[@]}" vmss list-instances -g "$RG" -n "$VMSS" -o json) ||
    die "cannot list the instances of $VMSS in $RG"
read -r -a IDS <<<"$(pyj '" ".join(sorted((str(i.get("instanceId")) for i in d), key=int))' <<<"$inst")"
((${#IDS[@]} >= 2)) || die "$VMSS has ${#IDS[@]} instance(s); the drill needs at least 2"
declare -A VMNAME=()
while read -r id name; do VMNAME[$id]=$name; done < <(pyj '"\n".join("%s %s" % (i.get("instanceId"), i.get("name")) for i in d)' <<<"$inst")

if [[ $VIA == ssh ]]; then
    missing=0
    for id in "${IDS[@]}"; do [[ -n ${IP[$id]:-} ]] || missing=1; done
    if ((missing)); then
        note "\$ az vmss nic list -g $RG --vmss-name $VMSS"
        nics=$("${AZ[@]}" vmss nic list -g "$RG" --vmss-name "$VMSS" -o json) ||
            die "cannot list the NICs of $VMSS (give --address ID=IP for each instance)"
        while read -r id ip; do
            [[ -n ${IP[$id]:-} ]] || IP[$id]=$ip
        done < <(pyj '"\n".join("%s %s" % (n["virtualMachine"]["id"].rsplit("/", 1)[1], n["ipConfigurations"][0]["privateIPAddress"]) for n in d if n.get("virtualMachine"))' <<<"$nics")
    fi
    for id in "${IDS[@]}"; do
        [[ -n ${IP[$id]:-} ]] || die "no private address for instance $id (give --address $id=IP)"
    done
fi

# --- the cluster's state --------------------------------------------------------------

declare -A NODE=() ADDR=() ROLES_HERE=() SCORE=()
say "reading each instance's beethovend (beethovenctl --json status)"
for id in "${IDS[@]}"; do
    s=$(remote "$id" "$CTL_REMOTE --json status") || die "instance $id: beethovenctl status failed (is beethovend running? is sudo allowed without a password? try --no-sudo)"
    NODE[$id]=$(pyj 'd.get("name")' <<<"$s")
    ADDR[$id]=$(pyj 'd.get("address")' <<<"$s")
    ROLES_HERE[$id]=$(pyj '" ".join(sorted(d.get("roles_here") or []))' <<<"$s")
    SCORE[$id]=$(pyj 'len(d.get("roles_here") or []) * 2 + ((d.get("raft") or {}).get("state") == "leader")' <<<"$s")
    ready=$(pyj 'd.get("ready") is True and d.get("mode") == "clustered"' <<<"$s")
    az_on=$(pyj '(d.get("azure") or {}).get("vm") is not None' <<<"$s")
    note "$(printf 'instance %-4s %-22s %-15s ready=%-5s azure=%-5s roles: %s' "$id" "${NODE[$id]}" "${ADDR[$id]}" "$ready" "$az_on" "${ROLES_HERE[$id]:--}")"
    [[ $ready == True ]] || die "instance $id (${NODE[$id]}) is not ready and clustered; fix the cluster first"
done

if [[ -z $IID ]]; then
    best=-1
    for id in "${IDS[@]}"; do
        if ((SCORE[$id] > best)); then best=${SCORE[$id]}; IID=$id; fi
    done
fi
[[ -n ${NODE[$IID]:-} ]] || die "instance $IID is not an instance of $VMSS (instances: ${IDS[*]})"
[[ -n ${ROLES_HERE[$IID]} ]] || die "instance $IID (${NODE[$IID]}) holds no role: nothing to drill"
read -r -a DOOMED_ROLES <<<"${ROLES_HERE[$IID]}"
DOOMED=${NODE[$IID]}

SURVIVORS=()
for id in "${IDS[@]}"; do [[ $id == "$IID" ]] || SURVIVORS+=("$id"); done
WATCH=${SURVIVORS[0]}
echo
note "\$ beethovenctl roles                          # on ${NODE[$WATCH]}"
remote "$WATCH" "$CTL_REMOTE roles" | while IFS= read -r l; do note "  $l"; done || true
echo
say "evicting instance $IID: ${VMNAME[$IID]:-?}, node $DOOMED at ${ADDR[$IID]}, holds ${DOOMED_ROLES[*]}"
if ((!YES)); then
    note "this evicts a real VM; run again with --yes to do it"
    exit 2
fi

# --- follow the logs -------------------------------------------------------------------

# ssh: journalctl -f of every instance into logs/ID.log, from now on.
# run-command: logs/ID.log is rewritten with journalctl --since on each poll.
SINCE=$(date -u -d '-5 seconds' '+%Y-%m-%d %H:%M:%S UTC')
JOURNAL_SINCE="$JOURNAL_REMOTE --since $(printf '%q' "$SINCE")"
if [[ $VIA == ssh ]]; then
    for id in "${IDS[@]}"; do
        # shellcheck disable=SC2029  # the command is meant for the far side
        ssh "${SSH_OPTS[@]}" "$SSH_USER@${IP[$id]}" "$JOURNAL_SINCE -f" \
            >"$WORK/logs/$id.log" 2>"$WORK/logs/$id.err" &
        BG+=("$!")
    done
    sleep 2
fi

# poll_logs ID...: (run-command only) fetches the instances' logs since
# SINCE, all at once; a failed fetch keeps the previous copy.
poll_logs() {
    [[ $VIA == run-command ]] || return 0
    local id pids=()
    for id in "$@"; do
        (
            if remote "$id" "$JOURNAL_SINCE" >"$WORK/logs/$id.new" 2>/dev/null; then
                mv "$WORK/logs/$id.new" "$WORK/logs/$id.log"
            else
                rm -f "$WORK/logs/$id.new"
            fi
        ) &
        pids+=("$!")
    done
    for id in "${pids[@]}"; do wait "$id" || true; done
}

T0=""
NB=""
TL_WHERE_W=14 # the timeline's "where": node names

# placed_without ID: instance ID's table gives each role of the evicted
# node its count (or every survivor when the count is larger) and the
# evicted node holds none. Prints the table as role=holders.
placed_without() {
    local t
    t=$(remote "$1" "$CTL_REMOTE --json roles") || return 1
    pyj '" ".join(sorted("%s=%s" % (e.get("role"), ",".join(sorted(e.get("holders") or []))) for e in d))' <<<"$t"
    [[ $(DOOMED="$DOOMED" SURV=$((${#IDS[@]} - 1)) pyj '
all((len(e.get("holders") or []) >= min(e.get("count") or 0, int(__import__("os").environ["SURV"])))
    and __import__("os").environ["DOOMED"] not in (e.get("holders") or []) for e in d)' <<<"$t") == True ]]
}

echo
note "\$ az vmss simulate-eviction -g $RG -n $VMSS --instance-id $IID"
T0=$(now_ms)
"${AZ[@]}" vmss simulate-eviction -g "$RG" -n "$VMSS" --instance-id "$IID" -o none ||
    die "az vmss simulate-eviction failed"
echo
say "timeline (t=0: simulate-eviction asked for; 'left': time until NotBefore)"
timeline_head 40
row "$T0" az "simulate-eviction of instance $IID accepted"
flush_rows

EV_ID=""
declare -A REPLACED=()
STEPS=()
APPROVED_MS=""
POWER=""
GONE_MS=""
FAILED_SEEN_MS=""
TABLE_OK_MS=""
TABLE_NOW=""

follow_once() {
    local id line t ev name r p
    # Observations first, logs after (rows come out in time order).
    if [[ -z $GONE_MS ]]; then
        p=$("${AZ[@]}" vmss get-instance-view -g "$RG" -n "$VMSS" --instance-id "$IID" \
            --query "statuses[?starts_with(code, 'PowerState/')].code | [0]" -o tsv 2>/dev/null) || p=gone
        p=${p#PowerState/}
        if [[ $p != "$POWER" ]]; then
            POWER=$p
            t=$(now_ms)
            row "$t" az "instance $IID power state: ${p:-unknown}"
            [[ $p == deallocated || $p == stopped || $p == gone ]] && GONE_MS=$t
        fi
    fi
    if [[ -z $TABLE_OK_MS && -n $GONE_MS ]] || [[ -z $TABLE_OK_MS && -n $APPROVED_MS ]]; then
        if TABLE_NOW=$(placed_without "$WATCH"); then
            TABLE_OK_MS=$(now_ms)
            row "$TABLE_OK_MS" "${NODE[$WATCH]}" "\$ beethovenctl roles: $TABLE_NOW ($DOOMED holds none)"
        fi
    fi
    if [[ -n $GONE_MS ]]; then poll_logs "${SURVIVORS[@]}"; else poll_logs "${IDS[@]}"; fi

    for id in "${IDS[@]}"; do
        name=${NODE[$id]}
        new_lines "$WORK/logs/$id.log"
        for line in "${NEW[@]}"; do
            [[ $line == ts=* ]] || continue
            ev=$(kv "$line" event)
            case $ev in
            eviction_step | azure_event | role_state | member_state | eviction_drain_refused | eviction_approve_failed) ;;
            *) continue ;;
            esac
            t=$(iso_ms "$(kv "$line" ts)")
            ((t >= T0 - 5000)) || continue
            case $ev in
            azure_event)
                [[ $(kv "$line" type) == Preempt ]] || continue
                if [[ $id == "$IID" && $(kv "$line" mine) == true ]] || [[ -z $EV_ID && $(kv "$line" first_resource) == "${VMNAME[$IID]:-}" ]]; then
                    if [[ -z $EV_ID || $EV_ID == "$(kv "$line" event_id)" ]]; then
                        EV_ID=$(kv "$line" event_id)
                        NB=$(iso_ms "$(kv "$line" not_before)")
                        row "$t" "$name" "Preempt ${EV_ID:0:8} seen, NotBefore $(kv "$line" not_before)"
                    fi
                fi
                ;;
            eviction_step)
                [[ $id == "$IID" ]] || continue
                r=$(kv "$line" step)
                STEPS+=("$r")
                [[ $r == approved ]] && APPROVED_MS=$t
                row "$t" "$name" "$(printf '%-24s elapsed_ms=%s' "$r" "$(kv "$line" elapsed_ms)")"
                ;;
            eviction_drain_refused | eviction_approve_failed)
                [[ $id == "$IID" ]] || continue
                row "$t" "$name" "$ev: $(kv "$line" reason)"
                ;;
            role_state)
                r=$(kv "$line" role)
                case $(kv "$line" to) in
                running)
                    row "$t" "$name" "role $r running (pid $(kv "$line" pid))"
                    ;;
                stopped)
                    row "$t" "$name" "role $r stopped"
                    ;;
                *) continue ;;
                esac
                if [[ $id != "$IID" && -z ${REPLACED[$r]:-} && " ${DOOMED_ROLES[*]} " == *" $r "* ]] &&
                    [[ $(kv "$line" to) == running ]]; then
                    REPLACED[$r]=$t
                fi
                ;;
            member_state)
                [[ $id == "$WATCH" && ($(kv "$line" name) == "$DOOMED" || $(kv "$line" addr) == "${ADDR[$IID]}") ]] || continue
                r=$(kv "$line" to)
                row "$t" "$name" "member $DOOMED: $(kv "$line" from) -> $r"
                [[ $r == failed || $r == left ]] && FAILED_SEEN_MS=$t
                ;;
            esac
        done
    done
    flush_rows
}

END=$((T0 + TIMEOUT * 1000))
while :; do
    follow_once
    [[ -n $GONE_MS && -n $TABLE_OK_MS && -n $FAILED_SEEN_MS ]] && break
    if (($(now_ms) > END)); then
        row "$(now_ms)" drill "stopped following after $TIMEOUT s"
        flush_rows
        break
    fi
    [[ $VIA == ssh ]] && sleep 1
done

# A last look at the survivors' logs (run-command) and the table.
poll_logs "${SURVIVORS[@]}"
follow_once

# --- verdict -------------------------------------------------------------------------

echo
say "after the eviction"
note "\$ beethovenctl roles                          # on ${NODE[$WATCH]}"
remote "$WATCH" "$CTL_REMOTE roles" | while IFS= read -r l; do note "  $l"; done || true
echo

WHY=()
[[ -n $NB ]] || WHY+=("no node logged the Preempt event for ${VMNAME[$IID]:-instance $IID}: is azure mode on (beethovenctl azure)?")
for r in "${DOOMED_ROLES[@]}"; do
    if [[ -z ${REPLACED[$r]:-} ]]; then
        WHY+=("role $r of $DOOMED never started on another node")
    elif [[ -n $NB ]] && ((REPLACED[$r] >= NB)); then
        WHY+=("role $r started elsewhere only $(secs $((REPLACED[$r] - NB))) after NotBefore")
    fi
done
[[ -n $GONE_MS ]] || WHY+=("instance $IID was not evicted (power state: ${POWER:-unknown})")
[[ -n $TABLE_OK_MS ]] || WHY+=("${NODE[$WATCH]}'s table never gave the roles their counts without $DOOMED (${TABLE_NOW:-no answer})")
[[ -n $FAILED_SEEN_MS ]] || WHY+=("${NODE[$WATCH]} never marked $DOOMED failed")

if [[ -n $APPROVED_MS ]]; then
    item "approved" "t=$((APPROVED_MS - T0)) ms${NB:+, $(vs_nb "$APPROVED_MS")}"
else
    item "approved" "not seen (no approval, or its log line was lost with the VM)"
fi
for r in "${DOOMED_ROLES[@]}"; do
    [[ -n ${REPLACED[$r]:-} ]] || continue
    item "$r running elsewhere" "t=$((REPLACED[$r] - T0)) ms${NB:+, $(vs_nb "${REPLACED[$r]}")}"
done
[[ -z $GONE_MS ]] || item "instance $IID gone" "t=$((GONE_MS - T0)) ms (power state $POWER)"
echo
verdict "$DOOMED" "${DOOMED_ROLES[@]}" && exit 0
exit 1
