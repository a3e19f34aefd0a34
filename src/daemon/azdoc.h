/* SPDX-License-Identifier: Apache-2.0 */
/* Azure Instance Metadata Service documents, parsed without I/O: the
 * Scheduled Events document (/metadata/scheduledevents, api-version
 * 2020-07-01), the instance document (/metadata/instance), the dates they
 * carry and the DMI check that tells an Azure VM from plain Hyper-V.
 *
 * Tolerant by design (Microsoft's Scheduled Events and IMDS documents,
 * ../shared/notes/azure.md §1.3, §1.11, §2): keys and enum values match
 * case-insensitively, numbers may come as strings, raw control characters
 * inside strings are accepted, unknown keys are ignored, NotBefore is
 * RFC 1123 or ISO 8601 or empty. A document that cannot be understood as
 * a whole is an error with a one-line reason; a single event that cannot
 * be used (no EventId) is skipped and counted. */
#ifndef BT_AZDOC_H
#define BT_AZDOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AZ_NAME_MAX 128   /* VM names, resource names (NUL included) */
#define AZ_ID_MAX 72      /* EventId, vmId (NUL included) */
#define AZ_TEXT_MAX 256   /* Description (truncated to fit) */
#define AZ_EVENTS_MAX 100 /* a placement group holds up to 100 VMs */
#define AZ_RESOURCES_MAX 32

/* The chassis asset tag every Azure VM carries (DMI). */
#define AZ_DMI_ASSET_TAG "7783-7084-3265-9085-8269-3286-77"
#define AZ_DMI_ASSET_TAG_PATH "/sys/class/dmi/id/chassis_asset_tag"

enum az_event_type {
    AZ_EV_FREEZE = 0,
    AZ_EV_REBOOT,
    AZ_EV_REDEPLOY,
    AZ_EV_PREEMPT,
    AZ_EV_TERMINATE,
    AZ_EV_UNKNOWN, /* a type this build does not know */
    AZ_EV_COUNT
};
/* "Freeze", "Reboot", "Redeploy", "Preempt", "Terminate", "Unknown". */
const char *az_event_type_str(enum az_event_type t);
/* Case-insensitive; AZ_EV_UNKNOWN for anything else (NULL included). */
enum az_event_type az_event_type_parse(const char *s);

enum az_event_status {
    AZ_ST_SCHEDULED = 0,
    AZ_ST_STARTED,
    AZ_ST_UNKNOWN,
};
/* "Scheduled", "Started", "Unknown". */
const char *az_event_status_str(enum az_event_status s);

struct az_event {
    char id[AZ_ID_MAX]; /* EventId as given (compare with az_name_eq) */
    enum az_event_type type;
    char type_text[24]; /* EventType as given, truncated */
    enum az_event_status status;
    int64_t not_before;  /* Unix seconds UTC; 0 when empty or absent */
    bool not_before_bad; /* present, non-empty, but not a date */
    char description[AZ_TEXT_MAX];
    char source[16];    /* EventSource ("Platform", "User", "") */
    int64_t duration_s; /* DurationInSeconds; -1 when absent */
    size_t n_resources;
    char resources[AZ_RESOURCES_MAX][AZ_NAME_MAX];
    /* Some listed resource is not in resources[]: more than
     * AZ_RESOURCES_MAX were listed, or a name was empty, not a string or
     * too long. Such an event may name another VM we cannot see. */
    bool resources_truncated;
};

struct az_events {
    int64_t incarnation; /* DocumentIncarnation */
    size_t n;            /* events kept, in document order */
    struct az_event ev[AZ_EVENTS_MAX];
    size_t n_skipped; /* events without a usable EventId, or beyond the max */
    bool overflow;    /* more than AZ_EVENTS_MAX events: the list is partial */
};

/* Parses a Scheduled Events document of len bytes (not NUL-terminated
 * necessarily). Returns 0 with *out filled, or BT_EINVAL with a one-line
 * reason in err for: an empty body, bad JSON, a top level that is not an
 * object, a missing or non-integer DocumentIncarnation, Events missing or
 * not an array. Resources names longer than AZ_NAME_MAX-1 are skipped
 * and set resources_truncated. On error *out is zeroed. */
int az_events_parse(const char *body, size_t len, struct az_events *out,
                    char *err, size_t errlen);

/* Does the event list name among its Resources (case-insensitively)? */
bool az_event_names(const struct az_event *ev, const char *name);
/* Does it name this VM and no other (and the list is not truncated)?
 * Only such an event may be approved: approval releases it for every VM
 * it lists. */
bool az_event_only(const struct az_event *ev, const char *name);

/* ASCII case-insensitive equality; false if either is NULL. */
bool az_name_eq(const char *a, const char *b);

/* Parses an RFC 1123 date ("Mon, 19 Sep 2016 18:29:47 GMT"; the weekday
 * optional, "UTC"/"GMT"/"Z"/"+0000" zones) or ISO 8601 / RFC 3339
 * ("2016-09-19T18:29:47Z", fractional seconds, "+hh:mm" offsets, a space
 * instead of "T", no zone meaning UTC) into Unix seconds UTC. Surrounding
 * blanks are ignored.
 * Returns 0, or BT_EINVAL (empty or not a date, fields out of range). */
int az_time_parse(const char *s, int64_t *out);
/* Formats Unix seconds as RFC 1123 ("Mon, 19 Sep 2016 18:29:47 GMT");
 * len >= 30. */
void az_time_format(int64_t t, char *buf, size_t len);

struct az_instance {
    char name[AZ_NAME_MAX]; /* compute.name: the name in Resources */
    char vm_id[AZ_ID_MAX];
    char location[64];
    char vmss[AZ_NAME_MAX]; /* compute.vmScaleSetName, "" if none */
    char zone[16];          /* compute.zone, "" if none */
    char priority[16];      /* "Regular", "Spot", "Low", "" */
    char eviction_policy[16];
    char resource_group[AZ_NAME_MAX];
    uint32_t private_ip; /* host byte order; 0 if none found */
    uint32_t subnet;     /* host byte order, host bits zero; 0 if none */
    unsigned prefix;     /* subnet prefix length; 0 if none */
};

/* Parses an instance document (/metadata/instance, api-version >=
 * 2021-02-01). compute.name is required. The network part picks the
 * private address: the one equal to local_addr (host byte order) when
 * local_addr is not 0 and some NIC carries it, else the first private
 * address of the first NIC listing one (the NIC list is not ordered, so
 * callers that know their address pass it). Its NIC's first subnet whose
 * range contains that address (else its first subnet) gives subnet/prefix
 * (prefix 0..32 as a string or number). Returns 0, or BT_EINVAL with a reason
 * in err (empty, bad JSON, no compute object, no compute.name, a subnet that
 * does not parse). A missing network section is not an error (private_ip 0). */
int az_instance_parse(const char *body, size_t len, uint32_t local_addr,
                      struct az_instance *out, char *err, size_t errlen);

/* Reads the DMI chassis asset tag at path (normally
 * AZ_DMI_ASSET_TAG_PATH) and compares it, blanks trimmed, with
 * AZ_DMI_ASSET_TAG. A missing or unreadable file is "not Azure". */
bool az_dmi_is_azure(const char *path);

#endif
