/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the Azure IMDS document parsers (src/daemon/azdoc.c):
 * Scheduled Events in the shapes Azure and its samples send (notes
 * azure.md §1.3, §1.11), dates, the instance document (§2), the DMI tag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "azdoc.h"
#include "beethoven/error.h"

#define IP(a, b, c, d)                                                         \
    ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 |          \
     (uint32_t)(d))

/* The Spot Preempt capture of the Azure spot CLI docs (api 2019-08-01, so
 * no DurationInSeconds); the EventId is written out in full. */
static const char spot_capture_2019[] =
    "{\"DocumentIncarnation\":1,\"Events\":[{\"EventId\":"
    "\"A123BC45-1234-5678-AB90-ABC12DEF3456\",\"EventStatus\":\"Scheduled\","
    "\"EventType\":\"Preempt\",\"ResourceType\":\"VirtualMachine\","
    "\"Resources\":[\"myspotvm\"],\"NotBefore\":\"Tue, 16 Mar 2021 00:58:46 "
    "GMT\",\"Description\":\"\",\"EventSource\":\"Platform\"}]}";

/* api-version 2020-07-01, pretty-printed as IMDS does. */
static const char preempt_2020[] =
    "{\n"
    "    \"DocumentIncarnation\": 2,\n"
    "    \"Events\": [\n"
    "        {\n"
    "            \"EventId\": \"B5A1E4F0-2C2B-4E0C-9C73-1B2E6B3E7A10\",\n"
    "            \"EventType\": \"Preempt\",\n"
    "            \"ResourceType\": \"VirtualMachine\",\n"
    "            \"Resources\": [\"aks-spotcpu2d2as-24469130-vmss_1\"],\n"
    "            \"EventStatus\": \"Scheduled\",\n"
    "            \"NotBefore\": \"Tue, 09 Aug 2022 17:07:32 GMT\",\n"
    "            \"Description\": \"\",\n"
    "            \"EventSource\": \"Platform\",\n"
    "            \"DurationInSeconds\": -1\n"
    "        }\n"
    "    ]\n"
    "}\n";

/* A Scheduled Events document with four events of different shapes. */
static const char several[] =
    "{\"DocumentIncarnation\":17,\"Events\":["
    "{\"EventId\":\"602d9444-d2cd-49c7-8624-8643e7171297\","
    "\"EventType\":\"Freeze\",\"ResourceType\":\"VirtualMachine\","
    "\"Resources\":[\"FrontEnd_IN_0\",\"BackEnd_IN_0\"],"
    "\"EventStatus\":\"Scheduled\","
    "\"NotBefore\":\"Mon, 19 Sep 2016 18:29:47 GMT\","
    "\"Description\":\"Virtual machine is being paused because of a "
    "memory-preserving Live Migration operation.\","
    "\"EventSource\":\"Platform\",\"DurationInSeconds\":5},"
    "{\"EventId\":\"11111111-2222-3333-4444-555555555555\","
    "\"EventType\":\"Reboot\",\"ResourceType\":\"VirtualMachine\","
    "\"Resources\":[\"vmss_1\"],\"EventStatus\":\"Started\","
    "\"NotBefore\":\"\",\"Description\":\"Host server is undergoing "
    "maintenance.\",\"EventSource\":\"Platform\",\"DurationInSeconds\":0},"
    "{\"EventId\":\"22222222-3333-4444-5555-666666666666\","
    "\"EventType\":\"Redeploy\",\"ResourceType\":\"VirtualMachine\","
    "\"Resources\":[\"vmss_1\"],\"EventStatus\":\"Scheduled\","
    "\"NotBefore\":\"2016-09-19T18:29:47Z\",\"Description\":\"\","
    "\"EventSource\":\"User\",\"DurationInSeconds\":-1},"
    /* api 2019-01-01 Terminate: no Description, no EventSource */
    "{\"EventId\":\"33333333-4444-5555-6666-777777777777\","
    "\"EventType\":\"Terminate\",\"ResourceType\":\"VirtualMachine\","
    "\"Resources\":[\"vmss_1\"],\"EventStatus\":\"Scheduled\","
    "\"NotBefore\":\"Thu, 05 Jan 2023 09:30:00 GMT\"}"
    "]}";

/* An instance document in the shape of IMDS api-version 2021-02-01: every
 * primitive a string, two NICs. The %s slots take the NICs. */
static const char instance_fmt[] =
    "{\"compute\":{\"azEnvironment\":\"AzurePublicCloud\","
    "\"evictionPolicy\":\"deallocate\",\"location\":\"westeurope\","
    "\"name\":\"bt-vmss_3\",\"offer\":\"0001-com-ubuntu-server-jammy\","
    "\"osType\":\"Linux\",\"placementGroupId\":"
    "\"0b7e3b3b-4b5b-4c5c-8d8d-9e9e9e9e9e9e\",\"platformFaultDomain\":\"0\","
    "\"platformUpdateDomain\":\"0\",\"priority\":\"Spot\","
    "\"resourceGroupName\":\"rg-beethoven\",\"subscriptionId\":"
    "\"8d10da13-8125-4ba9-a717-bf7490507b3d\",\"tagsList\":[{\"name\":"
    "\"role\",\"value\":\"worker\"}],\"vmId\":"
    "\"02aab8a4-74ef-476e-8182-f6d2ba4166a6\",\"vmScaleSetName\":\"bt-vmss\","
    "\"vmSize\":\"Standard_D2s_v5\",\"zone\":\"3\"},"
    "\"network\":{\"interface\":[%s,%s]}}";

static const char nic_a[] =
    "{\"ipv4\":{\"ipAddress\":[{\"privateIpAddress\":\"10.1.0.4\","
    "\"publicIpAddress\":\"\"}],\"subnet\":[{\"address\":\"10.1.0.0\","
    "\"prefix\":\"24\"}]},\"ipv6\":{\"ipAddress\":[]},"
    "\"macAddress\":\"000D3AF806EC\"}";

static const char nic_b[] =
    "{\"ipv4\":{\"ipAddress\":[{\"privateIpAddress\":\"10.2.0.7\","
    "\"publicIpAddress\":\"\"}],\"subnet\":[{\"address\":\"10.9.0.0\","
    "\"prefix\":\"16\"},{\"address\":\"10.2.0.0\",\"prefix\":\"20\"}]},"
    "\"ipv6\":{\"ipAddress\":[]},\"macAddress\":\"000D3AF806ED\"}";

/* ---- helpers --------------------------------------------------------- */

/* events_expect_error() on a string literal, embedded NULs included. */
#define EXPECT_ERROR(lit, want) events_expect_error(lit, sizeof(lit) - 1, want)

static struct az_events *events_new(void)
{
    struct az_events *e = calloc(1, sizeof(*e));
    assert_non_null(e);
    return e;
}

/* Parses a copy of s that has no NUL after it, so that a read past len
 * shows under AddressSanitizer. */
static int events_parse(const char *s, size_t len, struct az_events *e,
                        char *err, size_t errlen)
{
    char *copy = malloc(len > 0 ? len : 1);
    int rc;

    assert_non_null(copy);
    memcpy(copy, s, len);
    rc = az_events_parse(copy, len, e, err, errlen);
    free(copy);
    return rc;
}

static int events_parse_str(const char *s, struct az_events *e, char *err,
                            size_t errlen)
{
    return events_parse(s, strlen(s), e, err, errlen);
}

/* Expects s to be refused with a reason containing want. */
static void events_expect_error(const char *s, size_t len, const char *want)
{
    struct az_events *e = events_new();
    char err[256] = "";

    if (events_parse(s, len, e, err, sizeof(err)) != BT_EINVAL)
        fail_msg("accepted: %.*s", (int)len, s);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
    assert_null(strchr(err, '\n'));
    assert_int_equal(e->n, 0);
    assert_int_equal(e->incarnation, 0);
    free(e);
}

static int instance_parse_str(const char *s, uint32_t local,
                              struct az_instance *in, char *err, size_t errlen)
{
    size_t len = strlen(s);
    char *copy = malloc(len);
    int rc;

    assert_non_null(copy);
    memcpy(copy, s, len);
    rc = az_instance_parse(copy, len, local, in, err, errlen);
    free(copy);
    return rc;
}

static char *instance_doc(const char *first, const char *second)
{
    size_t n = sizeof(instance_fmt) + strlen(first) + strlen(second);
    char *s = malloc(n);

    assert_non_null(s);
    snprintf(s, n, instance_fmt, first, second);
    return s;
}

/* ---- Scheduled Events: real shapes ---------------------------------- */

static void test_azdoc_events_parse_empty_events(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    e->n = 99; /* must be overwritten */
    assert_int_equal(
        events_parse_str("{\"DocumentIncarnation\":0,\"Events\":[]}", e, err,
                         sizeof(err)),
        0);
    assert_int_equal(e->incarnation, 0);
    assert_int_equal(e->n, 0);
    assert_int_equal(e->n_skipped, 0);

    assert_int_equal(events_parse_str("{\"DocumentIncarnation\": 5, "
                                      "\"Events\": [ ]}\r\n",
                                      e, err, sizeof(err)),
                     0);
    assert_int_equal(e->incarnation, 5);
    assert_int_equal(e->n, 0);
    free(e);
}

static void test_azdoc_events_parse_spot_capture_2019(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_int_equal(events_parse_str(spot_capture_2019, e, err, sizeof(err)),
                     0);
    assert_int_equal(e->incarnation, 1);
    assert_int_equal(e->n, 1);
    assert_int_equal(e->n_skipped, 0);
    const struct az_event *ev = &e->ev[0];
    assert_string_equal(ev->id, "A123BC45-1234-5678-AB90-ABC12DEF3456");
    assert_int_equal(ev->type, AZ_EV_PREEMPT);
    assert_string_equal(ev->type_text, "Preempt");
    assert_int_equal(ev->status, AZ_ST_SCHEDULED);
    assert_int_equal(ev->not_before, 1615856326); /* 2021-03-16 00:58:46 */
    assert_false(ev->not_before_bad);
    assert_string_equal(ev->description, "");
    assert_string_equal(ev->source, "Platform");
    assert_int_equal(ev->duration_s, -1); /* absent before 2020-07-01 */
    assert_int_equal(ev->n_resources, 1);
    assert_string_equal(ev->resources[0], "myspotvm");
    assert_false(ev->resources_truncated);
    assert_true(az_event_only(ev, "myspotvm"));
    assert_true(az_event_only(ev, "MySpotVM"));
    free(e);
}

static void test_azdoc_events_parse_preempt_2020(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_int_equal(events_parse_str(preempt_2020, e, err, sizeof(err)), 0);
    assert_int_equal(e->incarnation, 2);
    assert_int_equal(e->n, 1);
    const struct az_event *ev = &e->ev[0];
    assert_string_equal(ev->id, "B5A1E4F0-2C2B-4E0C-9C73-1B2E6B3E7A10");
    assert_int_equal(ev->type, AZ_EV_PREEMPT);
    assert_int_equal(ev->status, AZ_ST_SCHEDULED);
    assert_int_equal(ev->not_before, 1660064852); /* 2022-08-09 17:07:32 */
    assert_int_equal(ev->duration_s, -1);
    assert_string_equal(ev->source, "Platform");
    assert_string_equal(ev->resources[0], "aks-spotcpu2d2as-24469130-vmss_1");
    assert_true(az_event_only(ev, "aks-spotcpu2d2as-24469130-vmss_1"));
    assert_false(az_event_only(ev, "aks-spotcpu2d2as-24469130-vmss_2"));
    free(e);
}

static void test_azdoc_events_parse_several(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_int_equal(events_parse_str(several, e, err, sizeof(err)), 0);
    assert_int_equal(e->incarnation, 17);
    assert_int_equal(e->n, 4);
    assert_int_equal(e->n_skipped, 0);

    assert_string_equal(e->ev[0].id, "602d9444-d2cd-49c7-8624-8643e7171297");
    assert_int_equal(e->ev[0].type, AZ_EV_FREEZE);
    assert_int_equal(e->ev[0].status, AZ_ST_SCHEDULED);
    assert_int_equal(e->ev[0].not_before, 1474309787);
    assert_int_equal(e->ev[0].duration_s, 5);
    assert_int_equal(e->ev[0].n_resources, 2);
    assert_string_equal(e->ev[0].resources[0], "FrontEnd_IN_0");
    assert_string_equal(e->ev[0].resources[1], "BackEnd_IN_0");
    assert_string_equal(e->ev[0].description,
                        "Virtual machine is being paused because of a "
                        "memory-preserving Live Migration operation.");

    assert_int_equal(e->ev[1].type, AZ_EV_REBOOT);
    assert_int_equal(e->ev[1].status, AZ_ST_STARTED);
    assert_int_equal(e->ev[1].not_before, 0); /* "" once Started */
    assert_false(e->ev[1].not_before_bad);
    assert_int_equal(e->ev[1].duration_s, 0);
    assert_string_equal(e->ev[1].description,
                        "Host server is undergoing maintenance.");

    assert_int_equal(e->ev[2].type, AZ_EV_REDEPLOY);
    assert_int_equal(e->ev[2].not_before, 1474309787); /* ISO form */
    assert_string_equal(e->ev[2].source, "User");
    assert_int_equal(e->ev[2].duration_s, -1);

    assert_int_equal(e->ev[3].type, AZ_EV_TERMINATE);
    assert_string_equal(e->ev[3].id, "33333333-4444-5555-6666-777777777777");
    assert_int_equal(e->ev[3].not_before, 1672911000);
    assert_string_equal(e->ev[3].description, "");
    assert_string_equal(e->ev[3].source, "");
    assert_int_equal(e->ev[3].duration_s, -1);
    free(e);
}

static void test_azdoc_events_parse_other_vms_events(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_int_equal(events_parse_str(several, e, err, sizeof(err)), 0);
    /* vmss_7 is named by none of them */
    for (size_t i = 0; i < e->n; i++) {
        assert_false(az_event_names(&e->ev[i], "vmss_7"));
        assert_false(az_event_only(&e->ev[i], "vmss_7"));
    }
    /* the Freeze names two VMs: seen by both, approvable by neither */
    assert_true(az_event_names(&e->ev[0], "FrontEnd_IN_0"));
    assert_true(az_event_names(&e->ev[0], "backend_in_0"));
    assert_false(az_event_only(&e->ev[0], "FrontEnd_IN_0"));
    assert_false(az_event_only(&e->ev[0], "BackEnd_IN_0"));
    assert_false(az_event_names(&e->ev[0], "vmss_1"));
    assert_true(az_event_only(&e->ev[1], "VMSS_1"));
    free(e);
}

static void test_azdoc_events_parse_case_insensitive(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_int_equal(
        events_parse_str(
            "{\"documentincarnation\":3,\"EVENTS\":[{\"eventid\":\"e-1\","
            "\"eventtype\":\"PREEMPT\",\"eventstatus\":\"started\","
            "\"resources\":[\"VM1\"],\"notbefore\":\"\",\"description\":"
            "\"x\",\"eventsource\":\"platform\",\"durationinseconds\":30},"
            "{\"EventID\":\"e-2\",\"EVENTTYPE\":\"freeze\",\"EventStatus\":"
            "\"SCHEDULED\",\"Resources\":[\"vm1\"],\"NotBefore\":"
            "\"mon, 19 sep 2016 18:29:47 gmt\"}]}",
            e, err, sizeof(err)),
        0);
    assert_int_equal(e->incarnation, 3);
    assert_int_equal(e->n, 2);
    assert_string_equal(e->ev[0].id, "e-1");
    assert_int_equal(e->ev[0].type, AZ_EV_PREEMPT);
    assert_string_equal(e->ev[0].type_text, "PREEMPT"); /* as given */
    assert_int_equal(e->ev[0].status, AZ_ST_STARTED);
    assert_string_equal(e->ev[0].source, "platform");
    assert_int_equal(e->ev[0].duration_s, 30);
    assert_string_equal(e->ev[0].description, "x");
    assert_true(az_event_only(&e->ev[0], "vm1"));
    assert_int_equal(e->ev[1].type, AZ_EV_FREEZE);
    assert_int_equal(e->ev[1].status, AZ_ST_SCHEDULED);
    assert_int_equal(e->ev[1].not_before, 1474309787);
    free(e);
}

static void test_azdoc_events_parse_unknown_type_and_status(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_int_equal(
        events_parse_str("{\"DocumentIncarnation\":1,\"Events\":[{\"EventId\":"
                         "\"x1\",\"EventType\":\"Hibernate\",\"EventStatus\":"
                         "\"Completed\",\"Resources\":[\"a\"],\"Extra\":{"
                         "\"nested\":[1,2]}},{\"EventId\":\"x2\"}]}",
                         e, err, sizeof(err)),
        0);
    assert_int_equal(e->n, 2);
    assert_int_equal(e->ev[0].type, AZ_EV_UNKNOWN);
    assert_string_equal(e->ev[0].type_text, "Hibernate");
    assert_int_equal(e->ev[0].status, AZ_ST_UNKNOWN);
    /* an event with nothing but an id is kept, with defaults */
    assert_string_equal(e->ev[1].id, "x2");
    assert_int_equal(e->ev[1].type, AZ_EV_UNKNOWN);
    assert_string_equal(e->ev[1].type_text, "");
    assert_int_equal(e->ev[1].status, AZ_ST_UNKNOWN);
    assert_int_equal(e->ev[1].not_before, 0);
    assert_false(e->ev[1].not_before_bad);
    assert_int_equal(e->ev[1].duration_s, -1);
    assert_int_equal(e->ev[1].n_resources, 0);
    assert_false(az_event_only(&e->ev[1], "a"));
    free(e);
}

/* ---- Scheduled Events: tolerance ------------------------------------ */

static void test_azdoc_events_parse_string_numbers(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_int_equal(
        events_parse_str("{\"DocumentIncarnation\":\"1\",\"Events\":[{"
                         "\"EventId\":\"a\",\"DurationInSeconds\":\"30\"},{"
                         "\"EventId\":\"b\",\"DurationInSeconds\":\" -1 \"},{"
                         "\"EventId\":\"c\",\"DurationInSeconds\":\"soon\"},{"
                         "\"EventId\":\"d\",\"DurationInSeconds\":9.0},{"
                         "\"EventId\":\"e\",\"DurationInSeconds\":null}]}",
                         e, err, sizeof(err)),
        0);
    assert_int_equal(e->incarnation, 1);
    assert_int_equal(e->n, 5);
    assert_int_equal(e->ev[0].duration_s, 30);
    assert_int_equal(e->ev[1].duration_s, -1);
    assert_int_equal(e->ev[2].duration_s, -1); /* not a number: unknown */
    assert_int_equal(e->ev[3].duration_s, 9);
    assert_int_equal(e->ev[4].duration_s, -1);

    assert_int_equal(events_parse_str("{\"DocumentIncarnation\":\" 42 \","
                                      "\"Events\":[]}",
                                      e, err, sizeof(err)),
                     0);
    assert_int_equal(e->incarnation, 42);
    assert_int_equal(events_parse_str("{\"DocumentIncarnation\":7.0,"
                                      "\"Events\":[]}",
                                      e, err, sizeof(err)),
                     0);
    assert_int_equal(e->incarnation, 7);
    assert_int_equal(events_parse_str("{\"DocumentIncarnation\":"
                                      "9223372036854775807,\"Events\":[]}",
                                      e, err, sizeof(err)),
                     0);
    assert_int_equal(e->incarnation, INT64_MAX);
    free(e);
}

static void test_azdoc_events_parse_bad_incarnation(void **state)
{
    static const char *const bad[] = {
        "{\"DocumentIncarnation\":\"one\",\"Events\":[]}",
        "{\"DocumentIncarnation\":\"\",\"Events\":[]}",
        "{\"DocumentIncarnation\":\"1x\",\"Events\":[]}",
        "{\"DocumentIncarnation\":1.5,\"Events\":[]}",
        "{\"DocumentIncarnation\":true,\"Events\":[]}",
        "{\"DocumentIncarnation\":[1],\"Events\":[]}",
        "{\"DocumentIncarnation\":9223372036854775808,\"Events\":[]}",
        "{\"DocumentIncarnation\":\"99999999999999999999\",\"Events\":[]}",
        "{\"DocumentIncarnation\":1e300,\"Events\":[]}",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        events_expect_error(bad[i], strlen(bad[i]),
                            "DocumentIncarnation is not an integer");
    EXPECT_ERROR("{\"DocumentIncarnation\":null,\"Events\":[]}",
                 "no DocumentIncarnation");
}

static void test_azdoc_events_parse_missing_parts(void **state)
{
    static const char no_events[] = "{\"DocumentIncarnation\":1}";
    static const char no_inc[] = "{\"Events\":[]}";
    static const char events_obj[] = "{\"DocumentIncarnation\":1,"
                                     "\"Events\":{\"EventId\":\"a\"}}";
    static const char events_str[] = "{\"DocumentIncarnation\":1,"
                                     "\"Events\":\"\"}";

    (void)state;
    events_expect_error(no_events, strlen(no_events), "no Events array");
    events_expect_error(no_inc, strlen(no_inc), "no DocumentIncarnation");
    events_expect_error(events_obj, strlen(events_obj),
                        "Events is an object, not an array");
    events_expect_error(events_str, strlen(events_str),
                        "Events is a string, not an array");
}

static void test_azdoc_events_parse_skips_events_without_id(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_int_equal(
        events_parse_str("{\"DocumentIncarnation\":4,\"Events\":["
                         "{\"EventType\":\"Preempt\",\"Resources\":[\"vm1\"]},"
                         "{\"EventId\":\"\",\"EventType\":\"Preempt\"},"
                         "{\"EventId\":12,\"EventType\":\"Preempt\"},"
                         "{\"EventId\":null},"
                         "{\"EventId\":\"has space\"},"
                         "{\"EventId\":\"quote\\\"d\"},"
                         "{\"EventId\":\"ctl\\u0001\"},"
                         "\"not an object\", 7, null, [],"
                         "{\"EventId\":\"ok-1\",\"EventType\":\"Reboot\"}]}",
                         e, err, sizeof(err)),
        0);
    assert_int_equal(e->n, 1);
    assert_int_equal(e->n_skipped, 11);
    assert_string_equal(e->ev[0].id, "ok-1");
    assert_int_equal(e->ev[0].type, AZ_EV_REBOOT);
    free(e);
}

static void test_azdoc_events_parse_not_before_forms(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_int_equal(
        events_parse_str(
            "{\"DocumentIncarnation\":1,\"Events\":["
            "{\"EventId\":\"a\",\"EventStatus\":\"Started\",\"NotBefore\":\"\"}"
            ","
            "{\"EventId\":\"b\",\"NotBefore\":\"   \"},"
            "{\"EventId\":\"c\",\"NotBefore\":\"tomorrow\"},"
            "{\"EventId\":\"d\",\"NotBefore\":\"Mon, 31 Sep 2016 18:29:47 "
            "GMT\"},"
            "{\"EventId\":\"e\",\"NotBefore\":1474309787},"
            "{\"EventId\":\"f\",\"NotBefore\":null},"
            "{\"EventId\":\"g\",\"NotBefore\":\"2016-09-19T20:29:47.5+02:00\"},"
            "{\"EventId\":\"h\",\"NotBefore\":\" Mon, 19 Sep 2016 18:29:47 "
            "GMT\\n\"}]}",
            e, err, sizeof(err)),
        0);
    assert_int_equal(e->n, 8);
    assert_int_equal(e->ev[0].not_before, 0); /* Started, blank */
    assert_false(e->ev[0].not_before_bad);
    assert_int_equal(e->ev[0].status, AZ_ST_STARTED);
    assert_int_equal(e->ev[1].not_before, 0);
    assert_false(e->ev[1].not_before_bad);
    assert_int_equal(e->ev[2].not_before, 0); /* kept, flagged */
    assert_true(e->ev[2].not_before_bad);
    assert_string_equal(e->ev[2].id, "c");
    assert_int_equal(e->ev[3].not_before, 0); /* 31 September */
    assert_true(e->ev[3].not_before_bad);
    assert_int_equal(e->ev[4].not_before, 0); /* a number is not a date */
    assert_true(e->ev[4].not_before_bad);
    assert_int_equal(e->ev[5].not_before, 0); /* null: absent */
    assert_false(e->ev[5].not_before_bad);
    assert_int_equal(e->ev[6].not_before, 1474309787);
    assert_false(e->ev[6].not_before_bad);
    assert_int_equal(e->ev[7].not_before, 1474309787);
    free(e);
}

static void test_azdoc_events_parse_raw_control_chars(void **state)
{
    /* unescaped newline, tab and CR inside strings, as Azure has sent */
    static const char doc[] =
        "{\"DocumentIncarnation\":1,\"Events\":[{\"EventId\":\"nl-1\","
        "\"EventType\":\"Reboot\",\"Resources\":[\"vm1\"],"
        "\"Description\":\"Host server\nis undergoing\tmaintenance.\r\","
        "\"NotBefore\":\"Mon, 19 Sep 2016 18:29:47 GMT\"}]}";
    /* a raw NUL inside a string (json-c alone stops there) */
    static const char nul_doc[] =
        "{\"DocumentIncarnation\":1,\"Events\":[{\"EventId\":\"nul-1\","
        "\"Description\":\"a\0b\",\"Resources\":[\"vm1\"]}]}";
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_int_equal(events_parse_str(doc, e, err, sizeof(err)), 0);
    assert_int_equal(e->n, 1);
    assert_string_equal(e->ev[0].id, "nl-1");
    /* control bytes are kept out of the text: one log line */
    assert_string_equal(e->ev[0].description,
                        "Host server is undergoing maintenance. ");
    assert_int_equal(e->ev[0].not_before, 1474309787);
    assert_true(az_event_only(&e->ev[0], "vm1"));

    assert_int_equal(
        events_parse(nul_doc, sizeof(nul_doc) - 1, e, err, sizeof(err)), 0);
    assert_int_equal(e->n, 1);
    assert_string_equal(e->ev[0].id, "nul-1");
    assert_string_equal(e->ev[0].description, "a"); /* cut at the NUL */
    free(e);
}

static void test_azdoc_events_parse_more_than_max(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";
    size_t cap = 64 * (AZ_EVENTS_MAX + 20) + 64, n = 0;
    char *doc = malloc(cap);

    (void)state;
    assert_non_null(doc);
    n += (size_t)snprintf(doc + n, cap - n,
                          "{\"DocumentIncarnation\":9,\"Events\":[");
    for (int i = 0; i < AZ_EVENTS_MAX + 8; i++) {
        if (i == 3 || i == 10) /* two without an id */
            n += (size_t)snprintf(doc + n, cap - n, "%s{\"EventType\":\"x\"}",
                                  i ? "," : "");
        else
            n += (size_t)snprintf(doc + n, cap - n,
                                  "%s{\"EventId\":\"ev-%03d\"}", i ? "," : "",
                                  i);
    }
    n += (size_t)snprintf(doc + n, cap - n, "]}");
    assert_true(n < cap);
    assert_int_equal(events_parse(doc, n, e, err, sizeof(err)), 0);
    assert_int_equal(e->n, AZ_EVENTS_MAX);
    assert_int_equal(e->n_skipped, 8); /* 2 without id + 6 over the max */
    assert_true(e->overflow);
    assert_string_equal(e->ev[0].id, "ev-000");
    assert_string_equal(e->ev[3].id, "ev-004");
    char last[16];
    snprintf(last, sizeof(last), "ev-%03d", AZ_EVENTS_MAX + 1);
    assert_string_equal(e->ev[AZ_EVENTS_MAX - 1].id, last);
    free(doc);
    free(e);
}

static void test_azdoc_events_parse_long_strings(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";
    char name127[128], name128[129], id71[72], id72[73], desc[400];
    char doc[4096];
    int n;

    (void)state;
    memset(name127, 'n', 127);
    name127[127] = '\0';
    memset(name128, 'm', 128);
    name128[128] = '\0';
    memset(id71, 'a', 71);
    id71[71] = '\0';
    memset(id72, 'b', 72);
    id72[72] = '\0';
    /* 254 ASCII bytes then a 2-byte character that straddles the cut */
    memset(desc, 'd', 254);
    strcpy(desc + 254, "\xc3\xa9 and more");

    n = snprintf(doc, sizeof(doc),
                 "{\"DocumentIncarnation\":1,\"Events\":["
                 "{\"EventId\":\"%s\",\"EventType\":\"PreemptPreemptPreempt"
                 "Preempt\",\"EventSource\":\"PlatformPlatformPlatform\","
                 "\"Description\":\"%s\",\"Resources\":[\"%s\",\"%s\"]},"
                 "{\"EventId\":\"%s\",\"Resources\":[\"%s\"]},"
                 "{\"EventId\":\"%s\",\"Resources\":[\"%s\"]}]}",
                 id71, desc, name127, name128, id72, name127, id71, name127);
    assert_true(n > 0 && (size_t)n < sizeof(doc));
    assert_int_equal(events_parse(doc, (size_t)n, e, err, sizeof(err)), 0);
    assert_int_equal(e->n, 2);
    assert_int_equal(e->n_skipped, 1); /* the 72-byte EventId */
    assert_string_equal(e->ev[0].id, id71);
    assert_int_equal(strlen(e->ev[0].type_text), 23);
    assert_int_equal(e->ev[0].type, AZ_EV_UNKNOWN);
    assert_string_equal(e->ev[0].source, "PlatformPlatfor");
    assert_int_equal(strlen(e->ev[0].description), 254);
    assert_int_equal(e->ev[0].description[253], 'd');
    /* the 127-byte name fits, the 128-byte one is dropped and flagged: it
     * may be another VM, so the event is not ours alone */
    assert_int_equal(e->ev[0].n_resources, 1);
    assert_string_equal(e->ev[0].resources[0], name127);
    assert_true(e->ev[0].resources_truncated);
    assert_true(az_event_names(&e->ev[0], name127));
    assert_false(az_event_only(&e->ev[0], name127));
    assert_false(az_event_names(&e->ev[0], name128));
    /* the third event: same name alone, approvable */
    assert_true(az_event_only(&e->ev[1], name127));
    free(e);
}

static void test_azdoc_events_parse_many_resources(void **state)
{
    struct az_events *e = events_new();
    char err[128] = "";
    char doc[4096];
    int n = 0;

    (void)state;
    n += snprintf(doc + n, sizeof(doc) - (size_t)n,
                  "{\"DocumentIncarnation\":1,\"Events\":[{\"EventId\":\"r\","
                  "\"Resources\":[");
    for (int i = 0; i < 40; i++)
        n += snprintf(doc + n, sizeof(doc) - (size_t)n, "%s\"vmss_%d\"",
                      i ? "," : "", i);
    n += snprintf(doc + n, sizeof(doc) - (size_t)n,
                  "]},{\"EventId\":\"s\",\"Resources\":[\"vmss_0\",7]},"
                  "{\"EventId\":\"t\",\"Resources\":[\"vmss_0\",\"VMSS_0\"]},"
                  "{\"EventId\":\"u\",\"Resources\":\"vmss_0\"}]}");
    assert_true((size_t)n < sizeof(doc));
    assert_int_equal(events_parse(doc, (size_t)n, e, err, sizeof(err)), 0);
    assert_int_equal(e->n, 4);
    assert_int_equal(e->ev[0].n_resources, AZ_RESOURCES_MAX);
    assert_true(e->ev[0].resources_truncated);
    assert_string_equal(e->ev[0].resources[31], "vmss_31");
    assert_true(az_event_names(&e->ev[0], "vmss_31"));
    assert_false(az_event_names(&e->ev[0], "vmss_32"));
    /* a non-string entry may hide another VM */
    assert_int_equal(e->ev[1].n_resources, 1);
    assert_true(e->ev[1].resources_truncated);
    assert_false(az_event_only(&e->ev[1], "vmss_0"));
    /* the same VM twice is still only that VM */
    assert_true(az_event_only(&e->ev[2], "vmss_0"));
    /* Resources not a list: names nobody */
    assert_int_equal(e->ev[3].n_resources, 0);
    assert_false(az_event_names(&e->ev[3], "vmss_0"));
    assert_false(az_event_only(&e->ev[3], "vmss_0"));
    free(e);
}

/* ---- Scheduled Events: refused documents ---------------------------- */

static void test_azdoc_events_parse_empty_body(void **state)
{
    struct az_events *e = events_new();
    char err[64] = "";

    (void)state;
    EXPECT_ERROR("", "empty document");
    EXPECT_ERROR(" \r\n\t", "empty document");
    assert_int_equal(az_events_parse(NULL, 0, e, err, sizeof(err)), BT_EINVAL);
    assert_string_equal(err, "empty document");
    /* no room for a reason: still refused, nothing written */
    assert_int_equal(az_events_parse("", 0, e, NULL, 0), BT_EINVAL);
    free(e);
}

static void test_azdoc_events_parse_bad_json(void **state)
{
    static const char *const bad[] = {
        "{\"DocumentIncarnation\":1,\"Events\":[",
        "{\"DocumentIncarnation\":1,\"Events\":[]",
        "{\"DocumentIncarnation\":1,\"Events\":[]}}",
        "{\"DocumentIncarnation\":1,\"Events\":[]} trailing",
        "{\"DocumentIncarnation\":1,\"Events\":[]}{\"x\":1}",
        "<html><body>Bad Request</body></html>",
        "{DocumentIncarnation:1}",
        "{\"DocumentIncarnation\":1,\"Events\":[\"unterminated]}",
        "\"just a string",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        events_expect_error(bad[i], strlen(bad[i]), "bad JSON");
    /* a NUL after the document is not whitespace */
    EXPECT_ERROR("{\"DocumentIncarnation\":1,\"Events\":[]}\0", "bad JSON");
}

static void test_azdoc_events_parse_top_level_not_object(void **state)
{
    (void)state;
    EXPECT_ERROR("[{\"DocumentIncarnation\":1,\"Events\":[]}]",
                 "top level is an array, not an object");
    EXPECT_ERROR("42", "top level is a number, not an object");
    EXPECT_ERROR("\"x\"", "top level is a string, not an object");
    EXPECT_ERROR("null", "top level is null, not an object");
}

static void test_azdoc_events_parse_too_large(void **state)
{
    size_t len = 1024 * 1024 + 1;
    char *big = malloc(len);
    struct az_events *e = events_new();
    char err[128] = "";

    (void)state;
    assert_non_null(big);
    memset(big, ' ', len);
    static const char doc[] = "{\"DocumentIncarnation\":1,\"Events\":[]}";
    memcpy(big, doc, sizeof(doc) - 1);
    assert_int_equal(az_events_parse(big, len, e, err, sizeof(err)), BT_EINVAL);
    assert_non_null(strstr(err, "too large"));
    /* exactly 1 MiB is still read */
    assert_int_equal(az_events_parse(big, len - 1, e, err, sizeof(err)), 0);
    assert_int_equal(e->incarnation, 1);
    free(big);
    free(e);
}

/* Every prefix of a real document, and every single-byte corruption of it,
 * is either parsed or refused with a reason; none crashes or reads out of
 * bounds (run under ASan). */
static void test_azdoc_events_parse_prefixes_and_corruptions(void **state)
{
    static const char subst[] = {'\0', '"', '\\', '{', ']', '\n', 'x', '\xff'};
    struct az_events *e = events_new();
    size_t len = strlen(preempt_2020);
    size_t last = len;
    char err[256];
    char *doc = malloc(len);

    (void)state;
    assert_non_null(doc);
    while (last > 0 && preempt_2020[last - 1] == '\n')
        last--;
    for (size_t n = 0; n < len; n++) {
        err[0] = '\0';
        int rc = events_parse(preempt_2020, n, e, err, sizeof(err));
        if (n < last) {
            if (rc != BT_EINVAL)
                fail_msg("prefix of %zu bytes accepted", n);
            assert_true(err[0] != '\0');
        } else {
            assert_int_equal(rc, 0);
        }
    }
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof(subst); k++) {
            memcpy(doc, preempt_2020, len);
            doc[i] = subst[k];
            int rc = az_events_parse(doc, len, e, err, sizeof(err));
            assert_true(rc == 0 || rc == BT_EINVAL);
            assert_true(e->n <= 1);
        }
    }
    free(doc);
    free(e);
}

/* ---- events: helpers ------------------------------------------------ */

static void test_azdoc_event_names_and_only(void **state)
{
    struct az_event ev;

    (void)state;
    memset(&ev, 0, sizeof(ev));
    assert_false(az_event_names(&ev, "vm1"));
    assert_false(az_event_only(&ev, "vm1")); /* names nobody */

    strcpy(ev.resources[0], "bt-vmss_3");
    ev.n_resources = 1;
    assert_true(az_event_names(&ev, "BT-VMSS_3"));
    assert_true(az_event_only(&ev, "bt-vmss_3"));
    assert_false(az_event_only(&ev, "bt-vmss_30"));
    assert_false(az_event_only(&ev, "bt-vmss_"));
    assert_false(az_event_names(&ev, NULL));
    assert_false(az_event_only(&ev, NULL));
    assert_false(az_event_names(NULL, "bt-vmss_3"));
    assert_false(az_event_only(NULL, "bt-vmss_3"));

    strcpy(ev.resources[1], "bt-vmss_4");
    ev.n_resources = 2;
    assert_true(az_event_names(&ev, "bt-vmss_4"));
    assert_false(az_event_only(&ev, "bt-vmss_3")); /* releases bt-vmss_4 */
    assert_false(az_event_only(&ev, "bt-vmss_4"));

    ev.n_resources = 1;
    ev.resources_truncated = true;
    assert_true(az_event_names(&ev, "bt-vmss_3"));
    assert_false(az_event_only(&ev, "bt-vmss_3"));
}

static void test_azdoc_name_eq(void **state)
{
    (void)state;
    assert_true(az_name_eq("vmss_1", "VMSS_1"));
    assert_true(az_name_eq("", ""));
    assert_true(az_name_eq("A-b_C.9", "a-B_c.9"));
    assert_false(az_name_eq("vmss_1", "vmss_10"));
    assert_false(az_name_eq("vmss_10", "vmss_1"));
    assert_false(az_name_eq("vmss_1", ""));
    assert_false(az_name_eq(NULL, "a"));
    assert_false(az_name_eq("a", NULL));
    assert_false(az_name_eq(NULL, NULL));
    assert_false(az_name_eq("[", "{")); /* only letters fold */
    assert_false(az_name_eq("\xc3\xa9", "\xc3\x89"));
}

static void test_azdoc_event_type_and_status_names(void **state)
{
    (void)state;
    assert_string_equal(az_event_type_str(AZ_EV_FREEZE), "Freeze");
    assert_string_equal(az_event_type_str(AZ_EV_REBOOT), "Reboot");
    assert_string_equal(az_event_type_str(AZ_EV_REDEPLOY), "Redeploy");
    assert_string_equal(az_event_type_str(AZ_EV_PREEMPT), "Preempt");
    assert_string_equal(az_event_type_str(AZ_EV_TERMINATE), "Terminate");
    assert_string_equal(az_event_type_str(AZ_EV_UNKNOWN), "Unknown");
    assert_string_equal(az_event_type_str((enum az_event_type)99), "Unknown");
    for (int t = 0; t < AZ_EV_COUNT; t++)
        assert_int_equal(
            az_event_type_parse(az_event_type_str((enum az_event_type)t)), t);
    assert_int_equal(az_event_type_parse("preempt"), AZ_EV_PREEMPT);
    assert_int_equal(az_event_type_parse("TERMINATE"), AZ_EV_TERMINATE);
    assert_int_equal(az_event_type_parse("Preempt "), AZ_EV_UNKNOWN);
    assert_int_equal(az_event_type_parse(""), AZ_EV_UNKNOWN);
    assert_int_equal(az_event_type_parse(NULL), AZ_EV_UNKNOWN);
    assert_string_equal(az_event_status_str(AZ_ST_SCHEDULED), "Scheduled");
    assert_string_equal(az_event_status_str(AZ_ST_STARTED), "Started");
    assert_string_equal(az_event_status_str(AZ_ST_UNKNOWN), "Unknown");
    assert_string_equal(az_event_status_str((enum az_event_status)7),
                        "Unknown");
}

/* ---- dates ---------------------------------------------------------- */

static void test_azdoc_time_parse_good(void **state)
{
    static const struct {
        const char *s;
        int64_t want;
    } good[] = {
        {"Mon, 19 Sep 2016 18:29:47 GMT", 1474309787},
        {"19 Sep 2016 18:29:47 GMT", 1474309787},
        {"Mon, 19 Sep 2016 18:29:47 UTC", 1474309787},
        {"Mon, 19 Sep 2016 18:29:47 Z", 1474309787},
        {"Mon, 19 Sep 2016 18:29:47 +0000", 1474309787},
        {"Mon, 19 Sep 2016 20:29:47 +0200", 1474309787},
        {"Mon, 19 Sep 2016 16:29:47 -0200", 1474309787},
        {"mon, 19 SEP 2016 18:29:47 gmt", 1474309787},
        {"  Mon, 19 Sep 2016 18:29:47 GMT \r\n", 1474309787},
        {"Tue, 16 Mar 2021 00:58:46 GMT", 1615856326},
        {"Tue, 09 Aug 2022 17:07:32 GMT", 1660064852},
        {"Tue, 9 Aug 2022 17:07:32 GMT", 1660064852},
        {"Thu, 29 Feb 2024 12:00:00 GMT", 1709208000},
        {"Thu, 01 Jan 1970 00:00:00 GMT", 0},
        {"Wed, 31 Dec 1969 23:59:59 GMT", -1},
        {"Tue, 19 Jan 2038 03:14:08 GMT", 2147483648LL},
        {"Fri, 31 Dec 9999 23:59:59 GMT", 253402300799LL},
        {"Thu, 01 Mar 1900 00:00:00 GMT", -2203891200LL},
        {"Sat, 31 Dec 2016 23:59:60 GMT", 1483228800}, /* leap second */
        {"2016-09-19T18:29:47Z", 1474309787},
        {"2016-09-19t18:29:47z", 1474309787},
        {"2016-09-19 18:29:47Z", 1474309787},
        {"2016-09-19T18:29:47.123Z", 1474309787},
        {"2016-09-19T18:29:47,999999Z", 1474309787},
        {"2016-09-19T18:29:47.123456789+00:00", 1474309787},
        {"2016-09-19T20:29:47+02:00", 1474309787},
        {"2016-09-19T20:29:47+0200", 1474309787},
        {"2016-09-19T20:29:47+02", 1474309787},
        {"2016-09-19T13:59:47-04:30", 1474309787},
        {"2016-09-19 18:29:47 +00:00", 1474309787},
        {"2016-09-19 18:29:47 UTC", 1474309787},
        {"2016-09-19T18:29:47", 1474309787}, /* no zone: UTC */
        {"2000-02-29T00:00:00Z", 951782400},
        {"2023-01-05T09:30:00Z", 1672911000},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        int64_t t = 12345;
        if (az_time_parse(good[i].s, &t) != 0)
            fail_msg("refused \"%s\"", good[i].s);
        if (t != good[i].want)
            fail_msg("\"%s\" -> %lld, want %lld", good[i].s, (long long)t,
                     (long long)good[i].want);
    }
}

static void test_azdoc_time_parse_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "   ",
        "tomorrow",
        "Mon 19 Sep 2016 18:29:47 GMT",   /* no comma */
        "Mon, 19 Sep 2016 18:29:47",      /* no zone */
        "Mon, 19 Sep 2016 18:29 GMT",     /* no seconds */
        "Mon, 19 Sept 2016 18:29:47 GMT", /* month name */
        "Mon, 19 Foo 2016 18:29:47 GMT",
        "Xyz, 19 Sep 2016 18:29:47 GMT", /* weekday name */
        "Monday, 19 Sep 2016 18:29:47 GMT",
        "Mon, 00 Sep 2016 18:29:47 GMT", /* day 0 */
        "Mon, 32 Sep 2016 18:29:47 GMT",
        "Mon, 31 Sep 2016 18:29:47 GMT", /* September has 30 */
        "Thu, 29 Feb 2023 12:00:00 GMT", /* not a leap year */
        "Thu, 29 Feb 1900 12:00:00 GMT",
        "Mon, 119 Sep 2016 18:29:47 GMT",
        "Mon, 19 Sep 16 18:29:47 GMT", /* two-digit year */
        "Mon, 19 Sep 20166 18:29:47 GMT",
        "Mon, 19 Sep 2016 24:00:00 GMT", /* hour */
        "Mon, 19 Sep 2016 18:60:47 GMT", /* minute */
        "Mon, 19 Sep 2016 18:29:61 GMT", /* second */
        "Mon, 19 Sep 2016 8:29:47 GMT",
        "Mon, 19 Sep 2016 18:29:47 EST",
        "Mon, 19 Sep 2016 18:29:47 +00",
        "Mon, 19 Sep 2016 18:29:47 +00:00",
        "Mon, 19 Sep 2016 18:29:47 +2400",
        "Mon, 19 Sep 2016 18:29:47 GMT x",
        "Mon, 19 Sep 2016 18:29:47 GMTX",
        "2016-09-19",
        "2016-09-19T18:29Z",
        "2016-13-19T18:29:47Z",
        "2016-00-19T18:29:47Z",
        "2016-09-00T18:29:47Z",
        "2016-09-31T18:29:47Z",
        "2016-09-19T25:29:47Z",
        "2016-09-19X18:29:47Z",
        "2016-09-19T18:29:47.Z",
        "2016-09-19T18:29:47+2:00",
        "2016-09-19T18:29:47+02:60",
        "2016-09-19T18:29:47Zjunk",
        "2016-9-19T18:29:47Z",
        "20160919T182947Z",
        "1474309787",
        "-1",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int64_t t = 777;
        if (az_time_parse(bad[i], &t) != BT_EINVAL)
            fail_msg("accepted \"%s\" as %lld", bad[i], (long long)t);
        assert_int_equal(t, 777); /* untouched */
    }
    int64_t t;
    assert_int_equal(az_time_parse(NULL, &t), BT_EINVAL);
}

static void test_azdoc_time_format_known(void **state)
{
    char buf[64];

    (void)state;
    az_time_format(1474309787, buf, sizeof(buf));
    assert_string_equal(buf, "Mon, 19 Sep 2016 18:29:47 GMT");
    az_time_format(0, buf, sizeof(buf));
    assert_string_equal(buf, "Thu, 01 Jan 1970 00:00:00 GMT");
    az_time_format(-1, buf, sizeof(buf));
    assert_string_equal(buf, "Wed, 31 Dec 1969 23:59:59 GMT");
    az_time_format(1709208000, buf, sizeof(buf));
    assert_string_equal(buf, "Thu, 29 Feb 2024 12:00:00 GMT");
    az_time_format(253402300799LL, buf, sizeof(buf));
    assert_string_equal(buf, "Fri, 31 Dec 9999 23:59:59 GMT");
    az_time_format(-2203891200LL, buf, sizeof(buf));
    assert_string_equal(buf, "Thu, 01 Mar 1900 00:00:00 GMT");

    /* exactly 30 bytes is enough */
    char exact[30];
    az_time_format(1660064852, exact, sizeof(exact));
    assert_string_equal(exact, "Tue, 09 Aug 2022 17:07:32 GMT");
    /* a short buffer is cut, never overrun */
    char small[8];
    az_time_format(1660064852, small, sizeof(small));
    assert_string_equal(small, "Tue, 09");
    /* extremes do not crash */
    az_time_format(INT64_MAX, buf, sizeof(buf));
    assert_non_null(strstr(buf, "GMT"));
    az_time_format(INT64_MIN, buf, sizeof(buf));
    assert_non_null(strstr(buf, "GMT"));
}

/* az_time_format agrees with the C library, and az_time_parse reads back
 * what it writes, over 1900..2200. */
static void test_azdoc_time_format_round_trip(void **state)
{
    char buf[40], want[40];

    (void)state;
    for (int64_t t = -2208988800LL; t < 7258118400LL; t += 7777777 + 13) {
        time_t tt = (time_t)t;
        struct tm tm;
        int64_t back = 0;

        assert_non_null(gmtime_r(&tt, &tm));
        strftime(want, sizeof(want), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        az_time_format(t, buf, sizeof(buf));
        assert_string_equal(buf, want);
        assert_int_equal(az_time_parse(buf, &back), 0);
        assert_int_equal(back, t);
        /* the ISO form of the same instant */
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
        assert_int_equal(az_time_parse(want, &back), 0);
        assert_int_equal(back, t);
    }
}

/* ---- instance document ---------------------------------------------- */

static void test_azdoc_instance_parse_real_shape(void **state)
{
    struct az_instance in;
    char err[128] = "";
    char *doc = instance_doc(nic_a, nic_b);

    (void)state;
    assert_int_equal(instance_parse_str(doc, 0, &in, err, sizeof(err)), 0);
    assert_string_equal(in.name, "bt-vmss_3");
    assert_string_equal(in.vm_id, "02aab8a4-74ef-476e-8182-f6d2ba4166a6");
    assert_string_equal(in.location, "westeurope");
    assert_string_equal(in.vmss, "bt-vmss");
    assert_string_equal(in.zone, "3");
    assert_string_equal(in.priority, "Spot");
    assert_string_equal(in.eviction_policy, "Deallocate");
    assert_string_equal(in.resource_group, "rg-beethoven");
    /* no local address: the first NIC listing one */
    assert_int_equal(in.private_ip, IP(10, 1, 0, 4));
    assert_int_equal(in.subnet, IP(10, 1, 0, 0));
    assert_int_equal(in.prefix, 24);
    free(doc);
}

static void test_azdoc_instance_parse_two_nics_either_order(void **state)
{
    struct az_instance in;
    char err[128] = "";
    char *ab = instance_doc(nic_a, nic_b);
    char *ba = instance_doc(nic_b, nic_a);

    (void)state;
    /* we are 10.2.0.7: its NIC, and its subnet (the second, /20) */
    assert_int_equal(
        instance_parse_str(ab, IP(10, 2, 0, 7), &in, err, sizeof(err)), 0);
    assert_int_equal(in.private_ip, IP(10, 2, 0, 7));
    assert_int_equal(in.subnet, IP(10, 2, 0, 0));
    assert_int_equal(in.prefix, 20);
    assert_int_equal(
        instance_parse_str(ba, IP(10, 2, 0, 7), &in, err, sizeof(err)), 0);
    assert_int_equal(in.private_ip, IP(10, 2, 0, 7));
    assert_int_equal(in.prefix, 20);

    /* we are 10.1.0.4, whichever NIC comes first */
    assert_int_equal(
        instance_parse_str(ba, IP(10, 1, 0, 4), &in, err, sizeof(err)), 0);
    assert_int_equal(in.private_ip, IP(10, 1, 0, 4));
    assert_int_equal(in.subnet, IP(10, 1, 0, 0));
    assert_int_equal(in.prefix, 24);

    /* no local address: the first NIC listed */
    assert_int_equal(instance_parse_str(ba, 0, &in, err, sizeof(err)), 0);
    assert_int_equal(in.private_ip, IP(10, 2, 0, 7));
    assert_int_equal(in.subnet, IP(10, 2, 0, 0));

    /* an address no NIC carries: the first NIC listed */
    assert_int_equal(
        instance_parse_str(ab, IP(192, 168, 1, 1), &in, err, sizeof(err)), 0);
    assert_int_equal(in.private_ip, IP(10, 1, 0, 4));
    free(ab);
    free(ba);
}

static void test_azdoc_instance_parse_prefix_forms(void **state)
{
    static const char numeric[] =
        "{\"compute\":{\"name\":\"vm1\"},\"network\":{\"interface\":[{"
        "\"ipv4\":{\"ipAddress\":[{\"privateIpAddress\":\"172.16.5.9\"}],"
        "\"subnet\":[{\"address\":\"172.16.5.0\",\"prefix\":26}]}}]}}";
    /* the address outside the only subnet: fall back to it, host bits
     * cleared */
    static const char outside[] =
        "{\"compute\":{\"name\":\"vm1\"},\"network\":{\"interface\":[{"
        "\"ipv4\":{\"ipAddress\":[{\"privateIpAddress\":\"10.0.0.4\"}],"
        "\"subnet\":[{\"address\":\"10.7.3.5\",\"prefix\":\" 16 \"}]}}]}}";
    /* IMDS's "" for missing values, and a NIC without subnets */
    static const char blanks[] =
        "{\"compute\":{\"name\":\"vm1\"},\"network\":{\"interface\":[{"
        "\"ipv4\":{\"ipAddress\":[{\"privateIpAddress\":\"\"}],"
        "\"subnet\":[]}},{\"ipv4\":{\"ipAddress\":[{\"privateIpAddress\":"
        "\"10.0.0.5\"}],\"subnet\":[{\"address\":\"\",\"prefix\":\"\"}]}}]}}";
    struct az_instance in;
    char err[128] = "";

    (void)state;
    assert_int_equal(instance_parse_str(numeric, 0, &in, err, sizeof(err)), 0);
    assert_int_equal(in.private_ip, IP(172, 16, 5, 9));
    assert_int_equal(in.subnet, IP(172, 16, 5, 0));
    assert_int_equal(in.prefix, 26);

    assert_int_equal(instance_parse_str(outside, 0, &in, err, sizeof(err)), 0);
    assert_int_equal(in.private_ip, IP(10, 0, 0, 4));
    assert_int_equal(in.subnet, IP(10, 7, 0, 0));
    assert_int_equal(in.prefix, 16);

    assert_int_equal(instance_parse_str(blanks, 0, &in, err, sizeof(err)), 0);
    assert_int_equal(in.private_ip, IP(10, 0, 0, 5));
    assert_int_equal(in.subnet, 0);
    assert_int_equal(in.prefix, 0);
}

static void test_azdoc_instance_parse_bad_subnet(void **state)
{
    static const char *const bad[] = {
        "{\"compute\":{\"name\":\"vm1\"},\"network\":{\"interface\":[{"
        "\"ipv4\":{\"ipAddress\":[{\"privateIpAddress\":\"10.0.0.4\"}],"
        "\"subnet\":[{\"address\":\"10.0.0\",\"prefix\":\"24\"}]}}]}}",
        "{\"compute\":{\"name\":\"vm1\"},\"network\":{\"interface\":[{"
        "\"ipv4\":{\"ipAddress\":[{\"privateIpAddress\":\"10.0.0.4\"}],"
        "\"subnet\":[{\"address\":\"10.0.0.0\",\"prefix\":\"33\"}]}}]}}",
        "{\"compute\":{\"name\":\"vm1\"},\"network\":{\"interface\":[{"
        "\"ipv4\":{\"ipAddress\":[{\"privateIpAddress\":\"10.0.0.4\"}],"
        "\"subnet\":[{\"address\":\"10.0.0.0\",\"prefix\":\"/24\"}]}}]}}",
        "{\"compute\":{\"name\":\"vm1\"},\"network\":{\"interface\":[{"
        "\"ipv4\":{\"ipAddress\":[{\"privateIpAddress\":\"10.0.0.4\"}],"
        "\"subnet\":[{\"address\":\"10.0.0.0\"}]}}]}}",
    };
    struct az_instance in;
    char err[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (instance_parse_str(bad[i], 0, &in, err, sizeof(err)) != BT_EINVAL)
            fail_msg("accepted %s", bad[i]);
        assert_non_null(strstr(err, "network.interface[0].ipv4.subnet[0]."));
        assert_string_equal(in.name, ""); /* cleared on error */
    }
}

static void test_azdoc_instance_parse_missing_network(void **state)
{
    static const char *const docs[] = {
        "{\"compute\":{\"name\":\"vm1\",\"vmId\":\"abc\"}}",
        "{\"compute\":{\"name\":\"vm1\",\"vmId\":\"abc\"},\"network\":{}}",
        "{\"compute\":{\"name\":\"vm1\",\"vmId\":\"abc\"},\"network\":\"\"}",
        "{\"compute\":{\"name\":\"vm1\",\"vmId\":\"abc\"},\"network\":{"
        "\"interface\":[{\"ipv4\":{\"ipAddress\":[]}}]}}",
    };
    struct az_instance in;
    char err[128] = "";

    (void)state;
    for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        assert_int_equal(
            instance_parse_str(docs[i], IP(10, 0, 0, 4), &in, err, sizeof(err)),
            0);
        assert_string_equal(in.name, "vm1");
        assert_string_equal(in.vm_id, "abc");
        assert_string_equal(in.vmss, "");
        assert_string_equal(in.zone, "");
        assert_string_equal(in.priority, "");
        assert_int_equal(in.private_ip, 0);
        assert_int_equal(in.subnet, 0);
        assert_int_equal(in.prefix, 0);
    }
}

static void test_azdoc_instance_parse_keys_and_values_case(void **state)
{
    static const char doc[] =
        "{\"Compute\":{\"Name\":\"VM-Regular\",\"Priority\":\"regular\","
        "\"EvictionPolicy\":\"\",\"Location\":\"eastus\",\"zone\":2,"
        "\"VMScaleSetName\":\"\"},\"Network\":{\"Interface\":[{\"IPv4\":{"
        "\"IPAddress\":[{\"PrivateIPAddress\":\" 10.3.0.4 \"}],\"Subnet\":["
        "{\"Address\":\"10.3.0.0\",\"Prefix\":\"24\"}]}}]}}";
    struct az_instance in;
    char err[128] = "";

    (void)state;
    assert_int_equal(instance_parse_str(doc, 0, &in, err, sizeof(err)), 0);
    assert_string_equal(in.name, "VM-Regular");
    assert_string_equal(in.priority, "Regular");
    assert_string_equal(in.eviction_policy, "");
    assert_string_equal(in.location, "eastus");
    assert_string_equal(in.zone, "2"); /* a number, as text */
    assert_string_equal(in.vmss, "");
    assert_int_equal(in.private_ip, IP(10, 3, 0, 4));
    assert_int_equal(in.subnet, IP(10, 3, 0, 0));
    assert_int_equal(in.prefix, 24);
}

static void test_azdoc_instance_parse_refused(void **state)
{
    static const struct {
        const char *doc;
        const char *want;
    } bad[] = {
        {"", "empty document"},
        {"{\"compute\":", "bad JSON"},
        {"[]", "top level is an array, not an object"},
        {"{\"network\":{}}", "no compute object"},
        {"{\"compute\":\"vm1\"}", "no compute object"},
        {"{\"compute\":{\"vmId\":\"abc\"}}", "no compute.name"},
        {"{\"compute\":{\"name\":\"\"}}", "no compute.name"},
        {"{\"compute\":{\"name\":7}}", "no compute.name"},
        {"{\"compute\":{\"name\":null}}", "no compute.name"},
    };
    struct az_instance in;
    char err[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(
            instance_parse_str(bad[i].doc, 0, &in, err, sizeof(err)),
            BT_EINVAL);
        if (strstr(err, bad[i].want) == NULL)
            fail_msg("\"%s\": error \"%s\" lacks \"%s\"", bad[i].doc, err,
                     bad[i].want);
    }
}

static void test_azdoc_instance_parse_long_strings(void **state)
{
    char doc[1024], name[200], loc[100];
    struct az_instance in;
    char err[128] = "";

    (void)state;
    memset(loc, 'l', 99);
    loc[99] = '\0';
    memset(name, 'n', 127);
    name[127] = '\0';
    snprintf(doc, sizeof(doc),
             "{\"compute\":{\"name\":\"%s\",\"location\":\"%s\","
             "\"priority\":\"SpotSpotSpotSpotSpot\"}}",
             name, loc);
    assert_int_equal(instance_parse_str(doc, 0, &in, err, sizeof(err)), 0);
    assert_string_equal(in.name, name);
    assert_int_equal(strlen(in.location), sizeof(in.location) - 1);
    assert_string_equal(in.priority, "SpotSpotSpotSpo");

    /* a name that does not fit is refused, not cut: a cut name could
     * match another VM's */
    memset(name, 'n', 150);
    name[150] = '\0';
    snprintf(doc, sizeof(doc), "{\"compute\":{\"name\":\"%s\"}}", name);
    assert_int_equal(instance_parse_str(doc, 0, &in, err, sizeof(err)),
                     BT_EINVAL);
    assert_non_null(strstr(err, "compute.name"));
}

/* ---- DMI ------------------------------------------------------------ */

static char *dmi_file(const char *content, size_t len)
{
    char *path = strdup("/tmp/test_azdoc_dmi.XXXXXX");
    int fd;

    assert_non_null(path);
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, content, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_azdoc_dmi_is_azure(void **state)
{
    static const struct {
        const char *content;
        bool want;
    } cases[] = {
        {AZ_DMI_ASSET_TAG "\n", true},
        {AZ_DMI_ASSET_TAG, true},
        {"  " AZ_DMI_ASSET_TAG " \r\n\n", true},
        {"None\n", false}, /* plain Hyper-V */
        {"", false},
        {"\n", false},
        {"7783-7084-3265-9085-8269-3286-7\n", false},
        {AZ_DMI_ASSET_TAG "7\n", false},
        {AZ_DMI_ASSET_TAG "\nextra\n", false},
        {"\xff\xff\xff\xff", false},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *path = dmi_file(cases[i].content, strlen(cases[i].content));
        if (az_dmi_is_azure(path) != cases[i].want)
            fail_msg("case %zu: \"%s\"", i, cases[i].content);
        unlink(path);
        free(path);
    }
    assert_false(az_dmi_is_azure("/nonexistent/test_azdoc/chassis_asset_tag"));
    assert_false(az_dmi_is_azure("/tmp")); /* a directory cannot be read */
    assert_false(az_dmi_is_azure(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_azdoc_events_parse_empty_events),
        cmocka_unit_test(test_azdoc_events_parse_spot_capture_2019),
        cmocka_unit_test(test_azdoc_events_parse_preempt_2020),
        cmocka_unit_test(test_azdoc_events_parse_several),
        cmocka_unit_test(test_azdoc_events_parse_other_vms_events),
        cmocka_unit_test(test_azdoc_events_parse_case_insensitive),
        cmocka_unit_test(test_azdoc_events_parse_unknown_type_and_status),
        cmocka_unit_test(test_azdoc_events_parse_string_numbers),
        cmocka_unit_test(test_azdoc_events_parse_bad_incarnation),
        cmocka_unit_test(test_azdoc_events_parse_missing_parts),
        cmocka_unit_test(test_azdoc_events_parse_skips_events_without_id),
        cmocka_unit_test(test_azdoc_events_parse_not_before_forms),
        cmocka_unit_test(test_azdoc_events_parse_raw_control_chars),
        cmocka_unit_test(test_azdoc_events_parse_more_than_max),
        cmocka_unit_test(test_azdoc_events_parse_long_strings),
        cmocka_unit_test(test_azdoc_events_parse_many_resources),
        cmocka_unit_test(test_azdoc_events_parse_empty_body),
        cmocka_unit_test(test_azdoc_events_parse_bad_json),
        cmocka_unit_test(test_azdoc_events_parse_top_level_not_object),
        cmocka_unit_test(test_azdoc_events_parse_too_large),
        cmocka_unit_test(test_azdoc_events_parse_prefixes_and_corruptions),
        cmocka_unit_test(test_azdoc_event_names_and_only),
        cmocka_unit_test(test_azdoc_name_eq),
        cmocka_unit_test(test_azdoc_event_type_and_status_names),
        cmocka_unit_test(test_azdoc_time_parse_good),
        cmocka_unit_test(test_azdoc_time_parse_bad),
        cmocka_unit_test(test_azdoc_time_format_known),
        cmocka_unit_test(test_azdoc_time_format_round_trip),
        cmocka_unit_test(test_azdoc_instance_parse_real_shape),
        cmocka_unit_test(test_azdoc_instance_parse_two_nics_either_order),
        cmocka_unit_test(test_azdoc_instance_parse_prefix_forms),
        cmocka_unit_test(test_azdoc_instance_parse_bad_subnet),
        cmocka_unit_test(test_azdoc_instance_parse_missing_network),
        cmocka_unit_test(test_azdoc_instance_parse_keys_and_values_case),
        cmocka_unit_test(test_azdoc_instance_parse_refused),
        cmocka_unit_test(test_azdoc_instance_parse_long_strings),
        cmocka_unit_test(test_azdoc_dmi_is_azure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
