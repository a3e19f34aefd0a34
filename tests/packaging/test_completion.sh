#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
#
# Checks packaging/bash-completion/beethovenctl: it parses (bash -n), and
# sourced in this bash its completion function answers COMP_WORDS/
# COMP_CWORD as it should, with a stand-in beethovenctl for the role
# names. When the built beethovenctl is there ($BT_BUILD_DIR/src, else
# build/src), the completion's commands and options are checked against
# its --help and 'help COMMAND'.
# Prints one ok/FAIL line per check; exits 0 when all pass, 1 otherwise.

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
comp=$root/packaging/bash-completion/beethovenctl
build=${BT_BUILD_DIR:-$root/build}
ctl=$build/src/beethovenctl
failures=0

ok() { echo "ok $*"; }
fail() {
    echo "FAIL $*"
    failures=$((failures + 1))
}

if ! bash -n "$comp" 2>/tmp/bt_comp_syntax.$$; then
    fail "bash -n $comp: $(cat /tmp/bt_comp_syntax.$$)"
    rm -f /tmp/bt_comp_syntax.$$
    exit 1
fi
rm -f /tmp/bt_comp_syntax.$$
ok "bash -n packaging/bash-completion/beethovenctl"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/bt_completion.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# A stand-in beethovenctl: answers 'roles' like the daemon does, records
# its arguments, and fails (exit 3, like an absent daemon) when asked to.
fake=$tmp/bin/beethovenctl
mkdir -p "$tmp/bin"
cat >"$fake" <<'EOF'
#!/bin/bash
printf '%s\n' "$*" >>"${FAKE_LOG:?}"
if [[ -n $FAKE_DOWN ]]; then
    echo "beethovenctl: cannot connect" >&2
    exit 3
fi
case " $* " in
*" --json roles "*)
    echo '[{"role":"db","count":2,"assigned":2,"holders":["n1","n2"],"holder_ids":["a","b"],"command":"/bin/db","restart":"always","revision":3},{"role":"web-1","count":1,"assigned":0,"holders":[],"holder_ids":[],"command":"/bin/web","restart":"always","revision":4},{"role":"worker.x","count":1,"assigned":1,"holders":["n3"],"holder_ids":["c"],"command":"/bin/w","restart":"on-failure","revision":5}]'
    ;;
*) exit 2 ;;
esac
EOF
chmod +x "$fake"
export FAKE_LOG=$tmp/fake.log
: >"$FAKE_LOG"

# shellcheck source=/dev/null
source "$comp"
if [[ $(complete -p beethovenctl 2>/dev/null) == *"-F _beethovenctl"* ]]; then
    ok "sourcing registers _beethovenctl for beethovenctl"
else
    fail "sourcing did not register a completion for beethovenctl"
fi

# comp WORD... : completes the last word, as bash would with these words
# (write "--socket=x" as "--socket" "=" "x": '=' breaks words). Prints the
# candidates sorted, one line, space-separated.
comp() {
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMP_LINE="$*"
    COMP_POINT=${#COMP_LINE}
    COMPREPLY=()
    _beethovenctl beethovenctl "${COMP_WORDS[COMP_CWORD]}" \
        "${COMP_WORDS[COMP_CWORD - 1]}" 2>"$tmp/stderr"
    printf '%s\n' "${COMPREPLY[@]}" | sed '/^$/d' | sort | tr '\n' ' ' |
        sed 's/ $//'
}

# expect "WANT" WORD... : the candidates for WORD... are exactly WANT.
expect() {
    local want=$1 got
    shift
    got=$(comp "$@")
    if [[ $got == "$want" ]]; then
        ok "complete [$*] -> [$got]"
    else
        fail "complete [$*]: got [$got], want [$want]"
    fi
    if [[ -s $tmp/stderr ]]; then
        fail "complete [$*] wrote to stderr: $(cat "$tmp/stderr")"
    fi
}

all_cmds='allocate allocation-list azure drain events help hw kv log-level nodes ready recover roles signal signals status undrain whois'
globals='--help --json --socket --timeout --version'

expect "$all_cmds" beethovenctl ''
expect "status" beethovenctl st
expect "ready recover roles" beethovenctl r
expect "roles" beethovenctl ro
expect "whois" beethovenctl --json w
expect "whois" beethovenctl -s /tmp/x.sock --timeout 50 w
expect "$globals" beethovenctl --
expect "--socket" beethovenctl --so
expect "--help --socket --timeout --version" beethovenctl --json --
expect "--help --socket --timeout --version" beethovenctl -j status --
expect "--active" beethovenctl nodes --a
expect "--active" beethovenctl nodes ''
expect "" beethovenctl nodes -a ''
expect "--replay" beethovenctl events ''
expect "--wait" beethovenctl ready --w
expect "" beethovenctl ready --wait ''
expect "" beethovenctl ready -w ''
expect "--deadline --help --json --no-wait --socket --timeout --version" \
    beethovenctl drain --
expect "--deadline --no-wait" beethovenctl drain ''
expect "--no-wait" beethovenctl drain --deadline 30 ''
expect "" beethovenctl drain --deadline ''
expect "" beethovenctl drain -d ''
expect "--yes" beethovenctl recover --y
expect "" beethovenctl status ''
expect "" beethovenctl undrain ''
expect "" beethovenctl --timeout ''
expect "" beethovenctl -t ''
expect "debug error info warn" beethovenctl log-level ''
expect "debug" beethovenctl log-level d
expect "debug error info warn" beethovenctl --json log-level ''
expect "" beethovenctl log-level info ''
expect "$all_cmds" beethovenctl help ''
expect "allocate allocation-list" beethovenctl al
expect "del get ls put watch" beethovenctl kv ''
expect "get" beethovenctl kv g
expect "--if-version" beethovenctl kv put --i
expect "--prefix" beethovenctl kv ls t --p
expect "--initial" beethovenctl kv watch --in
expect "bytes json" beethovenctl kv put --type ''
expect "" beethovenctl kv put --if-version ''
expect "count percent pre_processed" beethovenctl signal x --type ''
expect "--dec --inc --set --type --weight" beethovenctl signal x ''
expect "" beethovenctl signal x --weight ''
expect "--history" beethovenctl hw --hi
expect "drain" beethovenctl help dr
expect "" beethovenctl help drain ''

# Role names for whois come from the beethovenctl being completed.
: >"$FAKE_LOG"
expect "db web-1 worker.x" "$fake" whois ''
expect "web-1 worker.x" "$fake" whois w
if grep -q -- '--timeout 1000 --json roles' "$FAKE_LOG" &&
    ! grep -q -- '--socket' "$FAKE_LOG"; then
    ok "whois asked '--timeout 1000 --json roles' without --socket"
else
    fail "whois asked the daemon: [$(tr '\n' ';' <"$FAKE_LOG")]"
fi
: >"$FAKE_LOG"
expect "db" "$fake" --socket "$tmp/d.sock" whois d
expect "db" "$fake" --socket = "$tmp/d.sock" whois d
expect "db" "$fake" -s "$tmp/d.sock" --json whois d
if [[ $(grep -c -- "--socket $tmp/d.sock --timeout 1000 --json roles" \
    "$FAKE_LOG") == 3 ]]; then
    ok "whois passes the --socket given on the line"
else
    fail "whois with --socket asked: [$(tr '\n' ';' <"$FAKE_LOG")]"
fi
expect "" "$fake" whois db ''
FAKE_DOWN=1 expect "" "$fake" whois ''
expect "" "$tmp/no-such-beethovenctl" whois ''
# A daemon that does not answer costs at most the query's --timeout.
if grep -q 'timeout 1000' "$FAKE_LOG"; then
    ok "the role query carries a 1000 ms timeout"
else
    fail "the role query has no --timeout"
fi

# --socket completes file names, also written --socket=PATH.
mkdir -p "$tmp/run/sub"
: >"$tmp/run/beethoven.sock"
: >"$tmp/run/other"
expect "$tmp/run/beethoven.sock" beethovenctl --socket "$tmp/run/b"
expect "$tmp/run/beethoven.sock $tmp/run/other $tmp/run/sub" \
    beethovenctl -s "$tmp/run/"
expect "$tmp/run/beethoven.sock" beethovenctl --socket = "$tmp/run/b"
expect "$tmp/run/beethoven.sock" beethovenctl status --socket "$tmp/run/b"
expect "--socket=$tmp/run/beethoven.sock" beethovenctl "--socket=$tmp/run/b"

# In step with the real beethovenctl: every command of its table and
# every option of each command's usage line is completed, and the
# completion offers no command the tool does not have.
if [[ -x $ctl ]]; then
    real=$("$ctl" --help | awk '/^Commands:/ { on = 1; next }
        on && /^[^ ]/ { on = 0 }
        on && /^  [a-z]/ { print $1 }' | sort | tr '\n' ' ' | sed 's/ $//')
    offered=$(comp beethovenctl '')
    if [[ -z $real ]]; then
        fail "no commands found in $ctl --help"
    elif [[ $real == "$offered" ]]; then
        ok "the commands match $ctl --help: $real"
    else
        for c in $real; do
            [[ " $offered " == *" $c "* ]] ||
                fail "command '$c' of $ctl --help is not completed"
        done
        for c in $offered; do
            [[ " $real " == *" $c "* ]] ||
                fail "the completion offers '$c', which $ctl --help lacks"
        done
    fi
    for c in $real; do
        [[ $c == help ]] && continue
        usage=$("$ctl" help "$c" | head -n 1)
        got=" $(comp beethovenctl "$c" --) "
        while read -r o; do
            if [[ $got == *" $o "* ]]; then
                ok "'$c $o' is completed"
            else
                fail "'$c $o' ($usage) is not completed"
            fi
        done < <(grep -o -- '--[a-z][a-z-]*' <<<"$usage")
    done
    for o in $("$ctl" --help | awk '/^Options/ { on = 1; next }
        on && /^[^ ]/ { on = 0 } on' | grep -o -- '--[a-z][a-z-]*' |
        sort -u); do
        if [[ " $globals " == *" $o "* ]]; then
            ok "global option $o is completed"
        else
            fail "global option $o of $ctl --help is not completed"
        fi
    done
else
    echo "ok # skip: $ctl not built, not compared with its --help"
fi

if ((failures > 0)); then
    echo "FAIL test_completion: $failures check(s) failed"
    exit 1
fi
echo "ok test_completion: all checks passed"
exit 0
