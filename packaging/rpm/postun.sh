# SPDX-License-Identifier: Apache-2.0
# beethoven %postun: after an upgrade ($1 >= 1) restart a running daemon on
# the new binary (it hands its roles over on the way down).
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart beethoven.service >/dev/null 2>&1 || :
    fi
fi
exit 0
