#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# The man pages in docs/man: their generated lists match beethovend --help
# and docs/configuration.md (update-generated.py --check), and each page
# renders without a groff warning. Prints one ok/FAIL line per check.
set -u
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
passed=0
failed=0
check() { # check WHAT COMMAND...: runs COMMAND, records WHAT
    local what=$1 out
    shift
    if out=$("$@" 2>&1); then
        echo "ok   - $what"
        passed=$((passed + 1))
    else
        echo "FAIL - $what"
        printf '%s\n' "$out" | sed 's/^/       /'
        failed=$((failed + 1))
    fi
}
check "generated lists are current (update-generated.py --check)" \
    python3 "$root/docs/man/update-generated.py" --check
for page in "$root"/docs/man/*.[1-8]; do
    name=$(basename "$page")
    if command -v groff >/dev/null 2>&1; then
        # -ww: every warning; -z: no output. Warnings go to stderr.
        check "$name renders without warnings" \
            bash -c 'w=$(LC_ALL=C.UTF-8 groff -man -ww -z -Tutf8 "$1" 2>&1) && [ -z "$w" ] || { echo "$w"; false; }' _ "$page"
    else
        echo "ok   - $name: groff not installed, render check skipped"
    fi
done
echo "test_manpages: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
