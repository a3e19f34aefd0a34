/* SPDX-License-Identifier: Apache-2.0 */
/* dlopen and dlsym for the optional libraries (see dynlib.h). */
#include "dynlib.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

void *dynlib_load(const char *const *sonames, const struct dynlib_sym *syms,
                  size_t n, void *table, const char *what, const char *pkg,
                  char *err, size_t errlen)
{
    void *lib = NULL;
    for (size_t i = 0; lib == NULL && sonames[i] != NULL; i++)
        lib = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL) {
        snprintf(err, errlen,
                 "%s cannot be loaded (%s; install the %s package)", what,
                 dlerror(), pkg);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        void *f = dlsym(lib, syms[i].name);
        if (f == NULL) {
            snprintf(err, errlen, "%s has no %s", what, syms[i].name);
            dlclose(lib);
            return NULL;
        }
        /* A function pointer is stored through memcpy: ISO C has no
         * conversion between object and function pointers. */
        memcpy((char *)table + syms[i].off, &f, sizeof(f));
    }
    return lib;
}
