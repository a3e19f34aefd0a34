/* SPDX-License-Identifier: Apache-2.0 */
/* Node identity persisted in the data dir (see identity.h). */
#include "identity.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "beethoven/error.h"
#include "cidr.h"
#include "log.h"
#include "msg.h"

static int identity_mkdirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -ENAMETOOLONG;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0750) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Writes text to dir/name atomically (temp file, fsync, rename). */
static int identity_write(const char *dir, const char *name, const char *text)
{
    char path[PATH_MAX], tmp[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    size_t len = strlen(text);
    if (write(fd, text, len) != (ssize_t)len || fsync(fd) < 0) {
        int e = errno ? -errno : BT_EIO;
        close(fd);
        unlink(tmp);
        return e;
    }
    close(fd);
    if (rename(tmp, path) < 0)
        return -errno;
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Reads at most outlen-1 bytes of dir/name, trailing whitespace trimmed.
 * Returns 0, -ENOENT, or another negative errno. */
static int identity_read(const char *dir, const char *name, char *out,
                         size_t outlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, out, outlen - 1);
    int e = errno;
    close(fd);
    if (n < 0)
        return -e;
    out[n] = '\0';
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' ' ||
                     out[n - 1] == '\r' || out[n - 1] == '\t'))
        out[--n] = '\0';
    return 0;
}

int identity_load(struct identity *id, const char *data_dir, char *err,
                  size_t errlen)
{
    char buf[64], path[PATH_MAX];
    int rc;

    memset(id, 0, sizeof(*id));
    id->lock_fd = -1;
    if ((rc = identity_mkdirs(data_dir)) < 0) {
        snprintf(err, errlen, "data_dir: cannot create %s: %s", data_dir,
                 strerror(-rc));
        return rc;
    }
    snprintf(path, sizeof(path), "%s/lock", data_dir);
    id->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (id->lock_fd < 0) {
        rc = -errno;
        snprintf(err, errlen, "data_dir: cannot open %s: %s", path,
                 strerror(errno));
        return rc;
    }
    if (flock(id->lock_fd, LOCK_EX | LOCK_NB) < 0) {
        rc = -errno;
        snprintf(err, errlen,
                 "data_dir: %s is in use by another beethovend (lock %s)",
                 data_dir, path);
        identity_close(id);
        return rc;
    }

    rc = identity_read(data_dir, "node_id", buf, sizeof(buf));
    if (rc == 0 && msg_id_parse(buf, &id->node_id) < 0) {
        char bad[PATH_MAX];
        snprintf(path, sizeof(path), "%s/node_id", data_dir);
        snprintf(bad, sizeof(bad), "%s/node_id.corrupt", data_dir);
        rename(path, bad);
        log_error("node_id_corrupt", "path=%s kept_as=%s action=new_id", path,
                  bad);
        rc = -ENOENT;
    }
    if (rc == -ENOENT) {
        do {
            if (RAND_bytes((unsigned char *)&id->node_id,
                           sizeof(id->node_id)) != 1) {
                snprintf(err, errlen, "no randomness for a node id");
                identity_close(id);
                return BT_EIO;
            }
        } while (id->node_id == 0);
        msg_id_format(id->node_id, buf);
        strcat(buf, "\n");
        rc = identity_write(data_dir, "node_id", buf);
        if (rc == 0)
            log_info("node_id_created", "node_id=%.16s data_dir=%s", buf,
                     data_dir);
    }
    if (rc < 0) {
        snprintf(err, errlen, "data_dir: cannot keep the node id in %s: %s",
                 data_dir, strerror(-rc));
        identity_close(id);
        return rc;
    }

    uint64_t inc = 0;
    if (identity_read(data_dir, "incarnation", buf, sizeof(buf)) == 0) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(buf, &end, 10);
        if (errno == 0 && *end == '\0' && end != buf)
            inc = v;
        else
            log_error("incarnation_corrupt",
                      "path=%s/incarnation action=restart_from_1 "
                      "note=\"the cluster tells us a higher one on join\"",
                      data_dir);
    }
    if ((rc = identity_save_incarnation(id, data_dir, inc + 1)) < 0) {
        snprintf(err, errlen, "data_dir: cannot write %s/incarnation: %s",
                 data_dir, strerror(-rc));
        identity_close(id);
        return rc;
    }
    return 0;
}

int identity_save_incarnation(struct identity *id, const char *data_dir,
                              uint64_t incarnation)
{
    char buf[32];
    id->incarnation = incarnation;
    snprintf(buf, sizeof(buf), "%" PRIu64 "\n", incarnation);
    return identity_write(data_dir, "incarnation", buf);
}

void identity_close(struct identity *id)
{
    if (id->lock_fd >= 0)
        close(id->lock_fd);
    id->lock_fd = -1;
}

int identity_detect_address(uint32_t net, unsigned prefix, uint32_t *out)
{
    struct ifaddrs *ifa, *p;
    int rc = BT_ENOTFOUND;
    if (getifaddrs(&ifa) < 0)
        return -errno;
    for (p = ifa; p != NULL; p = p->ifa_next) {
        if (p->ifa_addr == NULL || p->ifa_addr->sa_family != AF_INET)
            continue;
        uint32_t a =
            ntohl(((struct sockaddr_in *)p->ifa_addr)->sin_addr.s_addr);
        if (cidr_contains(net, prefix, a)) {
            *out = a;
            rc = 0;
            break;
        }
    }
    freeifaddrs(ifa);
    return rc;
}
