/*
 * Fuzzes api_config_parse on arbitrary bytes (not NUL-terminated: only len
 * bytes may be read), then api_client_new_from_config on what it accepts.
 * Properties: no crash, no leak, *out zeroed on failure, err always
 * NUL-terminated.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cbhttp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    api_config cfg;
    char       err[128];
    char       small[4];
    cb_err     rc;
    char      *copy;

    if (size > 64 * 1024)
        return 0;
    /* An exact-size heap copy so that ASan sees a read past len. */
    copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    memset(err, 'x', sizeof(err));
    rc = api_config_parse(copy, size, &cfg, err, sizeof(err));
    if (!memchr(err, '\0', sizeof(err)))
        abort();
    if (rc == CB_OK) {
        if (err[0] != '\0')
            abort();
        api_client_free(api_client_new_from_config(&cfg));
    } else {
        if (rc != CB_ERR_INVALID && rc != CB_ERR_PARSE && rc != CB_ERR_NOMEM)
            abort();
        if (cfg.origins || cfg.origin_count || cfg.client.base_url || cfg.client.user_agent ||
            cfg.client.ca_file || cfg.client.default_headers || cfg.strings_)
            abort();
    }
    api_config_free(&cfg);
    api_config_free(&cfg);
    /* A tiny error buffer still ends with a NUL. */
    rc = api_config_parse(copy, size, &cfg, small, sizeof(small));
    if (!memchr(small, '\0', sizeof(small)))
        abort();
    api_config_free(&cfg);
    free(copy);
    return 0;
}
