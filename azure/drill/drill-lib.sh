# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
#
# Helpers shared by the eviction drills (local-drill.sh, azure-drill.sh),
# sourced by both, never run on its own: messages, usage errors, JSON
# through python3, times, key=value log lines, the timeline and the verdict.
#
# What the sourcing script provides: PROG (its name, for messages) before
# any die_usage; PYTHON (python3's path) before any pyj; T0 and NB (ms
# since the epoch: t=0 and NotBefore, NB may be empty) and TL_WHERE_W (the
# width of the timeline's "where" column) before row/flush_rows/vs_nb;
# WORK and KEEP before note_work_dir; WHY (the reasons the drill failed)
# before verdict.

# --- messages and usage errors ---------------------------------------------

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }

die_usage() {
    echo "$PROG: $*" >&2
    echo "run '$PROG --help' for the options" >&2
    exit 2
}

# need_value OPTION [VALUE...]: OPTION is followed by a non-empty value.
need_value() {
    [[ $# -ge 2 && -n $2 ]] || die_usage "$1 needs a value"
}

# note_work_dir: the work directory and whether it outlives the drill.
note_work_dir() {
    note "work dir  $WORK$( ((KEEP)) && echo ' (kept)' || echo ' (removed at exit; --keep keeps it)')"
}

# --- JSON and times ----------------------------------------------------------

# pyj EXPR: evaluates the Python expression EXPR with d bound to the JSON
# read from stdin; prints str() of the result (True/False for booleans,
# nothing for None). Input that is not JSON prints nothing and fails.
pyj() {
    "$PYTHON" -c '
import json, sys
try:
    d = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
r = eval(sys.argv[1], {"d": d})
if r is not None:
    print(r)
' "$1"
}

now_ms() { date +%s%3N; }

# iso_ms TIME: milliseconds since the epoch of an ISO 8601 or RFC 1123 time.
iso_ms() { date -u -d "$1" +%s%3N; }

# secs MS: signed milliseconds as seconds with one decimal.
secs() {
    local ms=$1 sign=""
    ((ms < 0)) && sign=- && ms=$((-ms))
    printf '%s%d.%d s' "$sign" $((ms / 1000)) $(((ms % 1000) / 100))
}

# vs_nb MS: "N s before NotBefore" or "N s after NotBefore" for time MS.
vs_nb() {
    if (($1 <= NB)); then
        echo "$(secs $((NB - $1))) before NotBefore"
    else
        echo "$(secs $(($1 - NB))) after NotBefore"
    fi
}

# --- logs ----------------------------------------------------------------------

# kv LINE KEY: the value of KEY=value in a key=value log line.
kv() {
    local re="(^| )$2=(\"[^\"]*\"|[^ ]*)"
    if [[ $1 =~ $re ]]; then
        local v=${BASH_REMATCH[2]}
        v=${v#\"}
        echo "${v%\"}"
    fi
}

declare -A OFF=() # file -> lines of it read so far
NEW=()
# new_lines FILE: sets NEW to the complete lines of FILE not read before (a
# partly written last line waits for the next call).
new_lines() {
    local f=$1 line n=0
    NEW=()
    [[ -f $f ]] || return 0
    while IFS= read -r line; do
        NEW+=("$line")
        n=$((n + 1))
    done < <(tail -n +$((${OFF[$f]:-0} + 1)) "$f")
    OFF[$f]=$((${OFF[$f]:-0} + n))
}

# --- the timeline and the verdict ------------------------------------------

ROWS=()
# row MS WHERE WHAT: a timeline row, printed in time order by flush_rows.
row() { ROWS+=("$1"$'\t'"$2"$'\t'"$3"); }

# timeline_head WHAT_W: the timeline's column heads, WHAT_W dashes under
# "what".
timeline_head() {
    local where what
    printf -v where '%*s' "$TL_WHERE_W" ''
    printf -v what '%*s' "$1" ''
    printf '    %9s  %7s  %-*s %s\n' "t" "left" "$TL_WHERE_W" "where" "what"
    printf '    %9s  %7s  %-*s %s\n' "---------" "-------" "$TL_WHERE_W" "${where// /-}" "${what// /-}"
}

# flush_rows: prints the rows gathered since the last call, oldest first:
# ms since T0, time left until NotBefore ('?' while NB is not known), where
# and what.
flush_rows() {
    local t w what left
    ((${#ROWS[@]})) || return 0
    while IFS=$'\t' read -r t w what; do
        left="?"
        [[ -z ${NB:-} ]] || left=$(secs $((NB - t)))
        printf '    %6d ms  %7s  %-*s %s\n' $((t - T0)) "$left" "$TL_WHERE_W" "$w" "$what"
    done < <(printf '%s\n' "${ROWS[@]}" | sort -n -s -k1,1)
    ROWS=()
}

# item LABEL TEXT: a line of the summary.
item() { printf '    %-25s %s\n' "$1" "$2"; }

# verdict NODE ROLE...: PASS when WHY is empty, else FAIL and each reason;
# NODE is the evicted node, ROLE... the roles it held. Returns 0 on PASS,
# 1 on FAIL.
verdict() {
    local node=$1 w
    shift
    if ((${#WHY[@]} == 0)); then
        say "PASS: every role of $node ($*) ran on other nodes before NotBefore; counts are whole again"
        return 0
    fi
    say "FAIL:"
    for w in "${WHY[@]}"; do note "- $w"; done
    return 1
}
