# SPDX-License-Identifier: Apache-2.0
# beethoven %preun: on erase ($1 = 0) stop and disable the service.
if [ "$1" -eq 0 ] && command -v systemctl >/dev/null 2>&1; then
    systemctl --no-reload disable --now beethoven.service >/dev/null 2>&1 || :
fi
exit 0
