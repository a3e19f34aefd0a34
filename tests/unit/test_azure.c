/* SPDX-License-Identifier: Apache-2.0 */
/* Azure mode: on, off, and auto from the DMI asset tag alone (no I/O
 * besides reading the given file). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "azure.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_azure_enabled_modes(void **state)
{
    (void)state;
    char dir[] = "/tmp/bt-test-azure-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char tag[sizeof(dir) + 16];
    snprintf(tag, sizeof(tag), "%s/tag", dir);
    struct config c;
    const char *why = NULL;
    config_defaults(&c);

    /* auto: no file, plain Hyper-V, Azure */
    assert_int_equal(c.azure, CONFIG_AZURE_AUTO);
    assert_false(azure_enabled(&c, tag, &why));
    assert_non_null(why);
    write_file(tag, "None\n");
    assert_false(azure_enabled(&c, tag, &why));
    write_file(tag, AZ_DMI_ASSET_TAG "\n");
    assert_true(azure_enabled(&c, tag, &why));
    assert_string_equal(why, "azure=auto, DMI chassis asset tag is Azure's");

    /* off wins over the tag; on needs no tag */
    c.azure = CONFIG_AZURE_OFF;
    assert_false(azure_enabled(&c, tag, &why));
    assert_string_equal(why, "azure=off");
    unlink(tag);
    c.azure = CONFIG_AZURE_ON;
    assert_true(azure_enabled(&c, tag, &why));
    assert_string_equal(why, "azure=on");
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_azure_enabled_modes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
