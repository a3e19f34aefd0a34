#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Refreshes the generated parts of the man pages.

The pages in this directory are hand-written roff, except for the regions
between a '.\\" BEGIN GENERATED <name>' and a '.\\" END GENERATED <name>'
comment, which this script writes:

  beethovend.8       OPTIONS-KEYS  from the key table of 'beethovend --help'
  beethoven.json.5   KEYS          from the Keys table of docs/configuration.md
  beethoven.json.5   ROLE-FIELDS   from the Roles table of docs/configuration.md

Usage: update-generated.py [--check] [--beethovend PATH]

Without --check the pages are rewritten in place. With --check nothing is
written; the exit status is 1 when a page is out of step (run the script
without --check and review the diff), 0 when all are current.
The daemon defaults to $BT_BUILD_DIR/src/beethovend, else build/src/beethovend.
"""
import os
import re
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# Characters of the sources that are not ASCII, as roff escapes.
UNICODE = {
    "\u00d7": "\\(mu",   # multiplication sign
    "\u2014": "\\(em",   # em dash
    "\u2013": "\\(en",   # en dash
    "\u2248": "\\(~~",   # almost equal
    "\u2264": "\\(<=",
    "\u2265": "\\(>=",
    "\u2192": "\\(->",
    "\u2076": "^6",      # superscript six (10^6)
    "\u00b5": "\\(mc",   # micro sign
}


def esc(text):
    """Plain text to roff: backslashes, minus signs, non-ASCII."""
    out = []
    for ch in text.replace("\\", "\\e"):
        if ch == "-":
            out.append("\\-")
        elif ord(ch) > 126:
            if ch not in UNICODE:
                raise SystemExit("update-generated: no roff escape for %r in %r"
                                 % (ch, text))
            out.append(UNICODE[ch])
        else:
            out.append(ch)
    return "".join(out)


def line(text):
    """Roff text lines of at most 79 bytes where the words allow; none
    starts with a control character."""
    out = []
    for ln in textwrap.wrap(text, width=79, break_long_words=False,
                            break_on_hyphens=False):
        out.append("\\&" + ln if ln.startswith((".", "'")) else ln)
    return "\n".join(out)


def md_link(m):
    """A Markdown link of docs/configuration.md as man page text."""
    label, target = m.group(1), m.group(2)
    if target == "#roles":
        return "ROLES below"
    if target.startswith("#"):
        return "%s in docs/configuration.md" % label
    page = target.split("#")[0]
    if label.strip("`") == page:
        return "docs/" + page
    return "%s (docs/%s)" % (label, page)


def md_inline(text):
    """Markdown of one table cell to roff: `code` bold, links as text."""
    text = re.sub(r"\[([^\]]*)\]\(([^)]*)\)", md_link, text)
    text = text.replace("\\|", "|")
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for p in parts:
        if p.startswith("`") and p.endswith("`") and len(p) >= 2:
            out.append("\\fB" + esc(p[1:-1]) + "\\fR")
        else:
            out.append(esc(p))
    return "".join(out)


def md_table(md, heading):
    """Rows (lists of cells) of the first table after '## heading'."""
    lines = md.splitlines()
    try:
        start = lines.index("## " + heading)
    except ValueError:
        raise SystemExit("update-generated: no '## %s' in docs/configuration.md"
                         % heading)
    rows = []
    for ln in lines[start + 1:]:
        if ln.startswith("## "):
            break
        if ln.startswith("|"):
            cells = re.split(r"(?<!\\)\|", ln.strip())[1:-1]
            rows.append([c.strip() for c in cells])
        elif rows:
            break
    if len(rows) < 3:
        raise SystemExit("update-generated: no table under '## %s'" % heading)
    return rows[0], rows[2:]  # header, body (without the --- row)


def help_keys(beethovend):
    """(flag, env, default, [description lines], allowed) per key."""
    try:
        text = subprocess.run([beethovend, "--help"], check=True,
                              capture_output=True, text=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise SystemExit("update-generated: cannot run %s --help: %s"
                         % (beethovend, e))
    lines = text.splitlines()
    i = next((n for n, ln in enumerate(lines)
              if ln.split() == ["FLAG", "ENVIRONMENT", "DEFAULT"]), None)
    if i is None:
        raise SystemExit("update-generated: no key table in %s --help"
                         % beethovend)
    keys = []
    for ln in lines[i + 1:]:
        if not ln.strip():
            if keys:
                break
            continue
        m = re.match(r"^  (--[a-z0-9-]+)\s+(BEETHOVEN_[A-Z0-9_]+)\s*(.*)$", ln)
        if m:
            keys.append([m.group(1), m.group(2), m.group(3).strip(), [], ""])
            continue
        if not keys or not ln.startswith("      "):
            raise SystemExit("update-generated: unexpected help line %r" % ln)
        body = ln.strip()
        if body.startswith("Default: ") and not keys[-1][2] \
                and not keys[-1][3]:
            keys[-1][2] = body[len("Default: "):]
        elif body.startswith("Allowed: "):
            keys[-1][4] = body[len("Allowed: "):]
        else:
            keys[-1][3].append(body)
    if not keys:
        raise SystemExit("update-generated: empty key table in --help")
    return keys


def gen_options(beethovend):
    out = []
    for flag, env, default, desc, allowed in help_keys(beethovend):
        boolean = allowed.startswith("true or false")
        out.append(".TP")
        if boolean:
            out.append("\\fB%s\\fR[\\fB=\\fR\\fIBOOL\\fR]" % esc(flag))
        else:
            out.append("\\fB%s\\fR \\fIVALUE\\fR" % esc(flag))
        for d in desc:
            out.append(line(esc(d)))
        if allowed:
            out.append(".br")
            out.append(line("Allowed: " + esc(allowed)))
        out.append(".br")
        out.append(line("Environment: \\fB%s\\fR; default: %s." % (
            esc(env), "\\fI" + esc(default) + "\\fR"
            if default in ("none", "the host name") or not default
            else "\\fB" + esc(default) + "\\fR")))
    return out


def gen_keys(md):
    head, rows = md_table(md, "Keys")
    want = ["key", "env var", "flag", "type", "default", "allowed", "meaning"]
    if head != want:
        raise SystemExit("update-generated: Keys table columns %r, want %r"
                         % (head, want))
    out = []
    for key, env, flag, typ, default, allowed, meaning in rows:
        out.append(".TP")
        out.append(line(md_inline(key)))
        out.append(line(md_inline(meaning[0].upper() + meaning[1:]) + "."))
        out.append(".br")
        out.append(line("Type: %s; default: %s." % (md_inline(typ),
                                                    md_inline(default))))
        out.append(".br")
        out.append(line("Allowed: " + md_inline(allowed)))
        out.append(".br")
        out.append(line("Environment %s, flag %s." % (md_inline(env),
                                                      md_inline(flag))))
    return out


def gen_role_fields(md):
    head, rows = md_table(md, "Roles")
    want = ["field", "type", "default", "allowed", "meaning"]
    if head != want:
        raise SystemExit("update-generated: Roles table columns %r, want %r"
                         % (head, want))
    out = []
    for field, typ, default, allowed, meaning in rows:
        out.append(".TP")
        out.append(line(md_inline(field)))
        out.append(line(md_inline(meaning[0].upper() + meaning[1:]) + "."))
        out.append(".br")
        out.append(line("Type: %s; %s." % (
            md_inline(typ), "required" if default == "required"
            else "default: " + md_inline(default))))
        out.append(".br")
        out.append(line("Allowed: " + md_inline(allowed)))
    return out


def splice(text, path, name, body):
    """text with region name replaced by body."""
    begin = '.\\" BEGIN GENERATED %s\n' % name
    end = '.\\" END GENERATED %s\n' % name
    a = text.find(begin)
    b = text.find(end)
    if a < 0 or b < a:
        raise SystemExit("update-generated: %s has no region %s"
                         % (path, name))
    return text[:a + len(begin)] + "".join(ln + "\n" for ln in body) + text[b:]


def main(argv):
    check = False
    build = os.environ.get("BT_BUILD_DIR") or os.path.join(ROOT, "build")
    beethovend = os.path.join(build, "src", "beethovend")
    args = list(argv)
    while args:
        a = args.pop(0)
        if a == "--check":
            check = True
        elif a == "--beethovend" and args:
            beethovend = args.pop(0)
        elif a in ("-h", "--help"):
            print(__doc__.strip())
            return 0
        else:
            print("update-generated: unknown argument %r (see --help)" % a,
                  file=sys.stderr)
            return 2
    with open(os.path.join(ROOT, "docs", "configuration.md"),
              encoding="utf-8") as f:
        md = f.read()
    jobs = {
        "beethovend.8": [("OPTIONS-KEYS", gen_options(beethovend))],
        "beethoven.json.5": [("KEYS", gen_keys(md)),
                             ("ROLE-FIELDS", gen_role_fields(md))],
    }
    stale = 0
    for page, regions in jobs.items():
        path = os.path.join(HERE, page)
        with open(path, encoding="utf-8") as f:
            old = f.read()
        new = old
        for name, body in regions:
            new = splice(new, path, name, body)
        if new == old:
            print("ok %s is current" % page)
            continue
        if check:
            print("FAIL %s is out of step with its sources "
                  "(run docs/man/update-generated.py)" % page)
            stale += 1
        else:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
            print("updated %s" % page)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
