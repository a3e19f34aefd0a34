# SPDX-License-Identifier: Apache-2.0
# beethoven %post: enable the service on the first install ($1 = 1); it
# starts once /etc/beethoven/secret exists (the unit's condition).
if [ "$1" -eq 1 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload enable beethoven.service >/dev/null 2>&1 || :
    if [ -d /run/systemd/system ]; then
        systemctl daemon-reload >/dev/null 2>&1 || :
        systemctl start beethoven.service >/dev/null 2>&1 || :
    fi
fi
exit 0
