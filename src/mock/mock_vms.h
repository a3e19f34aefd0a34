/* SPDX-License-Identifier: Apache-2.0 */
/* VM identities of the IMDS mock: which VM a client address is (listed
 * with --vms/--vm, or derived from the address), and that VM's instance
 * document (/metadata/instance) in the real service's shape, every
 * primitive a string (Azure IMDS document, "Data format"). Pure except
 * mock_vms_load_file(), which reads the file it is given. */
#ifndef BT_MOCK_VMS_H
#define BT_MOCK_VMS_H

#include <json-c/json.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MOCK_NAME_MAX 128 /* VM and scale-set names, NUL included */
#define MOCK_GUID_LEN 37  /* "XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX" + NUL */

struct mock_vm {
    char name[MOCK_NAME_MAX];
    uint32_t addr; /* host byte order */
    char zone[16]; /* "" when none */
    bool listed;   /* from --vms/--vm, not derived */
};

/* The scale set and its listed VMs. Fields are set by mock_vms_init() to
 * the defaults and may be overwritten by the caller (flags override the
 * file: load the file first). */
struct mock_vms {
    char vmss[MOCK_NAME_MAX];           /* default "beethoven-vmss" */
    char location[64];                  /* default "westeurope" */
    char resource_group[MOCK_NAME_MAX]; /* default "beethoven-rg" */
    bool has_subnet;                    /* else each client's own /24 */
    uint32_t subnet;                    /* host order, host bits zero */
    unsigned prefix;
    struct mock_vm *vm; /* listed VMs, owned */
    size_t n, cap;
};

void mock_vms_init(struct mock_vms *v);
/* Frees the listed VMs. */
void mock_vms_close(struct mock_vms *v);

/* Reads a JSON file {"vmss","location","resource_group","subnet":"a.b.c.d/n",
 * "vms":[{"name","address","zone"}...]} (every key optional) into v, adding
 * its VMs. Unknown keys are errors. Returns 0, or -1 with
 * "file: key: message" in err. */
int mock_vms_load_file(struct mock_vms *v, const char *path, char *err,
                       size_t errlen);

/* Adds a listed VM. Names must be unique (case-insensitively), addresses
 * too; name 1..127 printable characters without blanks, commas or '/'.
 * Returns 0, or -1 with a reason in err. */
int mock_vms_add(struct mock_vms *v, const char *name, uint32_t addr,
                 const char *zone, char *err, size_t errlen);

/* Parses "a.b.c.d/n" (n 0..32); host bits must be zero. 0 or -1. */
int mock_vms_parse_cidr(const char *s, uint32_t *net, unsigned *prefix);

/* Is name acceptable as a VM name? */
bool mock_vms_name_ok(const char *name);

/* The identity of the client at addr: the listed VM with that address,
 * else the derived one "<vmss>_<host part of addr within the subnet>"
 * (the subnet is --subnet when it contains addr, else addr's /24), zone "". */
void mock_vms_identify(const struct mock_vms *v, uint32_t addr,
                       struct mock_vm *out);

/* The listed VM called name (case-insensitive), or NULL. */
const struct mock_vm *mock_vms_find_name(const struct mock_vms *v,
                                         const char *name);

/* The subnet reported to addr: --subnet if it contains addr, else /24. */
void mock_vms_subnet_of(const struct mock_vms *v, uint32_t addr, uint32_t *net,
                        unsigned *prefix);

/* A stable upper-case GUID derived from text (case-insensitively): the
 * same text always gives the same GUID. */
void mock_vms_guid(const char *text, char out[MOCK_GUID_LEN]);

/* The full instance document of vm. The caller owns the result
 * (json_object_put). */
json_object *mock_vms_instance_doc(const struct mock_vms *v,
                                   const struct mock_vm *vm);

#endif
