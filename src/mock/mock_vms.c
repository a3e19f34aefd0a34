/* SPDX-License-Identifier: Apache-2.0 */
/* VM identities and instance documents of the IMDS mock (see mock_vms.h). */
#include "mock_vms.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cidr.h"
#include "log.h"

void mock_vms_init(struct mock_vms *v)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->vmss, sizeof(v->vmss), "beethoven-vmss");
    snprintf(v->location, sizeof(v->location), "westeurope");
    snprintf(v->resource_group, sizeof(v->resource_group), "beethoven-rg");
}

void mock_vms_close(struct mock_vms *v)
{
    free(v->vm);
    v->vm = NULL;
    v->n = v->cap = 0;
}

static void mock_vms_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void mock_vms_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

bool mock_vms_name_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n >= MOCK_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isgraph(c) || c == ',' || c == '/' || c == '"' || c == '\\')
            return false;
    }
    return true;
}

const struct mock_vm *mock_vms_find_name(const struct mock_vms *v,
                                         const char *name)
{
    for (size_t i = 0; i < v->n; i++)
        if (strcasecmp(v->vm[i].name, name) == 0)
            return &v->vm[i];
    return NULL;
}

int mock_vms_add(struct mock_vms *v, const char *name, uint32_t addr,
                 const char *zone, char *err, size_t errlen)
{
    char a[16];
    if (!mock_vms_name_ok(name)) {
        mock_vms_err(err, errlen,
                     "VM name '%s' is not valid (1..%d printable characters, "
                     "no blanks, commas, quotes or '/')",
                     name, MOCK_NAME_MAX - 1);
        return -1;
    }
    if (zone == NULL)
        zone = "";
    if (strlen(zone) >= sizeof(v->vm[0].zone)) {
        mock_vms_err(err, errlen, "zone '%s' of VM %s is too long", zone, name);
        return -1;
    }
    if (mock_vms_find_name(v, name) != NULL) {
        mock_vms_err(err, errlen, "VM name '%s' is listed twice", name);
        return -1;
    }
    for (size_t i = 0; i < v->n; i++) {
        if (v->vm[i].addr == addr) {
            mock_vms_err(err, errlen, "address %s is listed for %s and %s",
                         cidr_format_addr(addr, a), v->vm[i].name, name);
            return -1;
        }
    }
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 8;
        v->vm = xrealloc(v->vm, v->cap * sizeof(*v->vm));
    }
    struct mock_vm *vm = &v->vm[v->n++];
    memset(vm, 0, sizeof(*vm));
    snprintf(vm->name, sizeof(vm->name), "%s", name);
    snprintf(vm->zone, sizeof(vm->zone), "%s", zone);
    vm->addr = addr;
    vm->listed = true;
    return 0;
}

int mock_vms_parse_cidr(const char *s, uint32_t *net, unsigned *prefix)
{
    char buf[32];
    const char *slash = strchr(s, '/');
    if (slash == NULL || (size_t)(slash - s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, (size_t)(slash - s));
    buf[slash - s] = '\0';
    uint32_t a;
    if (cidr_parse_addr(buf, &a) != 0)
        return -1;
    const char *p = slash + 1;
    if (!isdigit((unsigned char)p[0]) || strlen(p) > 2)
        return -1;
    char *end;
    unsigned long n = strtoul(p, &end, 10);
    if (*end != '\0' || n > 32)
        return -1;
    if ((a & ~cidr_mask((unsigned)n)) != 0)
        return -1;
    *net = a;
    *prefix = (unsigned)n;
    return 0;
}

static int mock_vms_file_str(json_object *o, const char *path, const char *key,
                             char *dst, size_t dstlen, char *err, size_t errlen)
{
    if (!json_object_is_type(o, json_type_string)) {
        mock_vms_err(err, errlen, "%s: %s: must be a string", path, key);
        return -1;
    }
    const char *s = json_object_get_string(o);
    if (strlen(s) >= dstlen) {
        mock_vms_err(err, errlen, "%s: %s: longer than %zu characters", path,
                     key, dstlen - 1);
        return -1;
    }
    snprintf(dst, dstlen, "%s", s);
    return 0;
}

static int mock_vms_file_vm(struct mock_vms *v, json_object *e, size_t i,
                            const char *path, char *err, size_t errlen)
{
    char key[64], name[MOCK_NAME_MAX] = "", addr_s[32] = "", zone[16] = "";
    char why[256];
    uint32_t addr;

    if (!json_object_is_type(e, json_type_object)) {
        mock_vms_err(err, errlen, "%s: vms[%zu]: must be an object", path, i);
        return -1;
    }
    json_object_object_foreach(e, k, val)
    {
        snprintf(key, sizeof(key), "vms[%zu].%s", i, k);
        int rc;
        if (strcmp(k, "name") == 0)
            rc = mock_vms_file_str(val, path, key, name, sizeof(name), err,
                                   errlen);
        else if (strcmp(k, "address") == 0)
            rc = mock_vms_file_str(val, path, key, addr_s, sizeof(addr_s), err,
                                   errlen);
        else if (strcmp(k, "zone") == 0)
            rc = mock_vms_file_str(val, path, key, zone, sizeof(zone), err,
                                   errlen);
        else {
            mock_vms_err(err, errlen,
                         "%s: %s: unknown key (allowed: name, address, zone)",
                         path, key);
            rc = -1;
        }
        if (rc != 0)
            return -1;
    }
    if (name[0] == '\0' || addr_s[0] == '\0') {
        mock_vms_err(err, errlen,
                     "%s: vms[%zu]: needs \"name\" and \"address\"", path, i);
        return -1;
    }
    if (cidr_parse_addr(addr_s, &addr) != 0) {
        mock_vms_err(err, errlen,
                     "%s: vms[%zu].address: '%s' is not an IPv4 address", path,
                     i, addr_s);
        return -1;
    }
    if (mock_vms_add(v, name, addr, zone, why, sizeof(why)) != 0) {
        mock_vms_err(err, errlen, "%s: vms[%zu]: %s", path, i, why);
        return -1;
    }
    return 0;
}

int mock_vms_load_file(struct mock_vms *v, const char *path, char *err,
                       size_t errlen)
{
    json_object *root = json_object_from_file(path);
    int rc = -1;
    char subnet[40] = "";

    if (root == NULL) {
        mock_vms_err(err, errlen, "%s: cannot read or parse: %s", path,
                     json_util_get_last_err() ? json_util_get_last_err()
                                              : "unknown error");
        /* json-c's message ends with a newline; drop it. */
        size_t n = strlen(err);
        while (n > 0 && (err[n - 1] == '\n' || err[n - 1] == ' '))
            err[--n] = '\0';
        return -1;
    }
    if (!json_object_is_type(root, json_type_object)) {
        mock_vms_err(err, errlen, "%s: the top level must be an object", path);
        goto out_put;
    }
    json_object_object_foreach(root, k, val)
    {
        if (strcmp(k, "vmss") == 0) {
            if (mock_vms_file_str(val, path, k, v->vmss, sizeof(v->vmss), err,
                                  errlen) != 0)
                goto out_put;
            if (!mock_vms_name_ok(v->vmss)) {
                mock_vms_err(err, errlen, "%s: vmss: '%s' is not a valid name",
                             path, v->vmss);
                goto out_put;
            }
        } else if (strcmp(k, "location") == 0) {
            if (mock_vms_file_str(val, path, k, v->location,
                                  sizeof(v->location), err, errlen) != 0)
                goto out_put;
        } else if (strcmp(k, "resource_group") == 0) {
            if (mock_vms_file_str(val, path, k, v->resource_group,
                                  sizeof(v->resource_group), err, errlen) != 0)
                goto out_put;
        } else if (strcmp(k, "subnet") == 0) {
            if (mock_vms_file_str(val, path, k, subnet, sizeof(subnet), err,
                                  errlen) != 0)
                goto out_put;
            if (mock_vms_parse_cidr(subnet, &v->subnet, &v->prefix) != 0) {
                mock_vms_err(err, errlen,
                             "%s: subnet: '%s' is not a network like "
                             "127.0.0.0/24 (host bits zero)",
                             path, subnet);
                goto out_put;
            }
            v->has_subnet = true;
        } else if (strcmp(k, "vms") == 0) {
            if (!json_object_is_type(val, json_type_array)) {
                mock_vms_err(err, errlen, "%s: vms: must be an array", path);
                goto out_put;
            }
            size_t n = json_object_array_length(val);
            for (size_t i = 0; i < n; i++)
                if (mock_vms_file_vm(v, json_object_array_get_idx(val, i), i,
                                     path, err, errlen) != 0)
                    goto out_put;
        } else {
            mock_vms_err(err, errlen,
                         "%s: %s: unknown key (allowed: vmss, location, "
                         "resource_group, subnet, vms)",
                         path, k);
            goto out_put;
        }
    }
    rc = 0;
out_put:
    json_object_put(root);
    return rc;
}

void mock_vms_subnet_of(const struct mock_vms *v, uint32_t addr, uint32_t *net,
                        unsigned *prefix)
{
    if (v->has_subnet && cidr_contains(v->subnet, v->prefix, addr)) {
        *net = v->subnet;
        *prefix = v->prefix;
    } else {
        *net = addr & cidr_mask(24);
        *prefix = 24;
    }
}

void mock_vms_identify(const struct mock_vms *v, uint32_t addr,
                       struct mock_vm *out)
{
    for (size_t i = 0; i < v->n; i++) {
        if (v->vm[i].addr == addr) {
            *out = v->vm[i];
            return;
        }
    }
    uint32_t net;
    unsigned prefix;
    mock_vms_subnet_of(v, addr, &net, &prefix);
    memset(out, 0, sizeof(*out));
    out->addr = addr;
    snprintf(out->name, sizeof(out->name), "%.100s_%u", v->vmss,
             (unsigned)(addr - net));
}

/* FNV-1a over the lower-cased text, from a given offset basis. */
static uint64_t mock_vms_fnv(const char *text, uint64_t h)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        h ^= (uint64_t)tolower(*p);
        h *= 0x100000001b3ULL;
    }
    /* A final mix so that similar names differ in every digit. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

void mock_vms_guid(const char *text, char out[MOCK_GUID_LEN])
{
    uint64_t hi = mock_vms_fnv(text, 0xcbf29ce484222325ULL);
    uint64_t lo = mock_vms_fnv(text, 0x84222325cbf29ce4ULL);
    /* Version 8 (custom), RFC 9562 variant. */
    hi = (hi & ~0xf000ULL) | 0x8000ULL;
    lo = (lo & ~(0xc0ULL << 56)) | (0x80ULL << 56);
    snprintf(out, MOCK_GUID_LEN, "%08X-%04X-%04X-%04X-%012llX",
             (unsigned)(hi >> 32), (unsigned)(hi >> 16) & 0xffffu,
             (unsigned)hi & 0xffffu, (unsigned)(lo >> 48),
             (unsigned long long)(lo & 0xffffffffffffULL));
}

static void mock_vms_put(json_object *o, const char *key, const char *val)
{
    json_object_object_add(o, key, json_object_new_string(val));
}

/* The scale-set instance id: the decimal digits after the last '_', or
 * -1 when the name does not end like that. */
static long mock_vms_instance_id(const char *name)
{
    const char *us = strrchr(name, '_');
    if (us == NULL || us[1] == '\0' || strlen(us + 1) > 9)
        return -1;
    for (const char *p = us + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return -1;
    return strtol(us + 1, NULL, 10);
}

json_object *mock_vms_instance_doc(const struct mock_vms *v,
                                   const struct mock_vm *vm)
{
    char buf[512], guid[MOCK_GUID_LEN], a[16];
    json_object *root = json_object_new_object();
    json_object *c = json_object_new_object();
    long iid = mock_vms_instance_id(vm->name);

    mock_vms_put(c, "azEnvironment", "AzurePublicCloud");
    mock_vms_put(c, "evictionPolicy", "Delete");
    mock_vms_put(c, "isHostCompatibilityLayerVm", "false");
    mock_vms_put(c, "location", v->location);
    mock_vms_put(c, "name", vm->name);
    mock_vms_put(c, "offer", "");
    json_object *os = json_object_new_object();
    mock_vms_put(os, "adminUsername", "azureuser");
    if (iid >= 0) {
        /* Uniform scale sets: prefix + base-36 instance id, 6 digits. */
        char b36[7];
        long x = iid;
        for (int i = 5; i >= 0; i--) {
            b36[i] = "0123456789abcdefghijklmnopqrstuvwxyz"[x % 36];
            x /= 36;
        }
        b36[6] = '\0';
        snprintf(buf, sizeof(buf), "%.9s%s", v->vmss, b36);
    } else {
        snprintf(buf, sizeof(buf), "%.15s", vm->name);
    }
    mock_vms_put(os, "computerName", buf);
    mock_vms_put(os, "disablePasswordAuthentication", "true");
    json_object_object_add(c, "osProfile", os);
    mock_vms_put(c, "osType", "Linux");
    snprintf(buf, sizeof(buf), "placement-group:%s", v->vmss);
    mock_vms_guid(buf, guid);
    mock_vms_put(c, "placementGroupId", guid);
    mock_vms_put(c, "platformFaultDomain", "0");
    mock_vms_put(c, "platformUpdateDomain", "0");
    mock_vms_put(c, "priority", "Spot");
    mock_vms_put(c, "provider", "Microsoft.Compute");
    mock_vms_put(c, "publisher", "");
    mock_vms_put(c, "resourceGroupName", v->resource_group);
    char sub[MOCK_GUID_LEN];
    snprintf(buf, sizeof(buf), "subscription:%s", v->resource_group);
    mock_vms_guid(buf, sub);
    if (iid >= 0)
        snprintf(buf, sizeof(buf),
                 "/subscriptions/%s/resourceGroups/%s/providers/"
                 "Microsoft.Compute/virtualMachineScaleSets/%s/"
                 "virtualMachines/%ld",
                 sub, v->resource_group, v->vmss, iid);
    else
        snprintf(buf, sizeof(buf),
                 "/subscriptions/%s/resourceGroups/%s/providers/"
                 "Microsoft.Compute/virtualMachines/%s",
                 sub, v->resource_group, vm->name);
    mock_vms_put(c, "resourceId", buf);
    mock_vms_put(c, "sku", "");
    mock_vms_put(c, "subscriptionId", sub);
    mock_vms_put(c, "tags", "");
    json_object_object_add(c, "tagsList", json_object_new_array());
    mock_vms_put(c, "userData", "");
    mock_vms_put(c, "version", "");
    mock_vms_guid(vm->name, guid);
    mock_vms_put(c, "vmId", guid);
    mock_vms_put(c, "vmScaleSetName", v->vmss);
    mock_vms_put(c, "vmSize", "Standard_D2s_v3");
    mock_vms_put(c, "zone", vm->zone);
    json_object_object_add(root, "compute", c);

    uint32_t net;
    unsigned prefix;
    mock_vms_subnet_of(v, vm->addr, &net, &prefix);
    json_object *nic = json_object_new_object();
    json_object *v4 = json_object_new_object();
    json_object *ips = json_object_new_array();
    json_object *ip = json_object_new_object();
    mock_vms_put(ip, "privateIpAddress", cidr_format_addr(vm->addr, a));
    mock_vms_put(ip, "publicIpAddress", "");
    json_object_array_add(ips, ip);
    json_object_object_add(v4, "ipAddress", ips);
    json_object *subs = json_object_new_array();
    json_object *sn = json_object_new_object();
    mock_vms_put(sn, "address", cidr_format_addr(net, a));
    snprintf(buf, sizeof(buf), "%u", prefix);
    mock_vms_put(sn, "prefix", buf);
    json_object_array_add(subs, sn);
    json_object_object_add(v4, "subnet", subs);
    json_object_object_add(nic, "ipv4", v4);
    json_object *v6 = json_object_new_object();
    json_object_object_add(v6, "ipAddress", json_object_new_array());
    json_object_object_add(nic, "ipv6", v6);
    /* Azure MACs start with 00-0D-3A; the rest from the address. */
    snprintf(buf, sizeof(buf), "000D3A%02X%02X%02X", (vm->addr >> 16) & 0xff,
             (vm->addr >> 8) & 0xff, vm->addr & 0xff);
    mock_vms_put(nic, "macAddress", buf);
    json_object *ifs = json_object_new_array();
    json_object_array_add(ifs, nic);
    json_object *network = json_object_new_object();
    json_object_object_add(network, "interface", ifs);
    json_object_object_add(root, "network", network);
    return root;
}
