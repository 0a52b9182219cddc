/*
 * basic: the smallest complete cbhttp program.
 *
 * Starts the in-process test server, creates a client whose base URL points
 * at it, GETs "/json", prints the status and body, parses the body as JSON
 * and frees everything. Against a real service only the base URL changes.
 *
 *   make examples && build/examples/basic
 */
#include <stdio.h>

#include <cJSON.h>
#include <cbhttp.h>

#include "fixture.h"

int main(void)
{
    fixture     *f;
    api_client  *client;
    api_response resp;
    cJSON       *json = NULL;
    cb_err       err;
    int          rc = 1;

    /* The test server listens on 127.0.0.1 with an ephemeral port. */
    f = fixture_start();
    if (!f) {
        fprintf(stderr, "basic: cannot start the fixture server\n");
        return 1;
    }

    /* Every field left at zero means "the documented default": a breaker
     * per origin (5 failures in 60 s open it), 3 attempts with backoff, a
     * 30 s deadline per call and an in-memory cache. */
    client = api_client_new(&(api_client_config){
        .base_url = fixture_url(f),
        .timeout_ms = 2000,
    });
    if (!client) {
        fprintf(stderr, "basic: api_client_new failed\n");
        fixture_stop(f);
        return 1;
    }

    /* The response is overwritten by the call; free it afterwards whatever
     * the call returned. opts NULL = the client's defaults. */
    err = api_get(client, "/json", NULL, &resp);
    printf("GET %s/json -> %s, status %ld, %zu bytes, %u attempt(s)\n", fixture_url(f),
           cb_strerror(err), resp.status, resp.body_len, resp.attempts);
    if (err != CB_OK) {
        /* resp.error carries the detail (libcurl's message, for example). */
        fprintf(stderr, "basic: request failed: %s\n", resp.error);
        goto done;
    }
    printf("Content-Type: %s\n", api_response_header(&resp, "Content-Type")
                                     ? api_response_header(&resp, "Content-Type")
                                     : "(none)");
    printf("body: %s\n", resp.body);

    /* The body as a cJSON tree; the caller owns it and frees it with
     * cJSON_Delete. */
    err = api_response_json(&resp, &json);
    if (err != CB_OK) {
        fprintf(stderr, "basic: body is not JSON: %s\n", cb_strerror(err));
        goto done;
    }
    {
        char *pretty = cJSON_Print(json);

        printf("parsed JSON (%d top-level item(s)):\n%s\n", cJSON_GetArraySize(json),
               pretty ? pretty : "?");
        cJSON_free(pretty);
    }
    rc = 0;

done:
    cJSON_Delete(json);
    api_response_free(&resp);
    api_client_free(client);
    fixture_stop(f);
    return rc;
}
