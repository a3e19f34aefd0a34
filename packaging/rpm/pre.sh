# SPDX-License-Identifier: Apache-2.0
# beethoven %pre: the system user and group, before the files that
# belong to them are unpacked.
getent group beethoven >/dev/null || groupadd -r beethoven
getent passwd beethoven >/dev/null ||
    useradd -r -g beethoven -d /var/lib/beethoven -M -s /sbin/nologin \
        -c "Beethoven failover daemon" beethoven
exit 0
