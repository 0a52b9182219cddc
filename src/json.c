/* JSON request and response bodies, on top of cJSON. */
#include <string.h>

#include <cjson/cJSON.h>

#include "cbhttp.h"
#include "response.h"

/* JSON's insignificant whitespace (RFC 8259 section 2). */
static int json_is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

CB_EXPORT cb_err api_response_json(const api_response *resp, struct cJSON **out)
{
    const char *end = NULL;
    const char *stop;
    cJSON      *root;

    if (out)
        *out = NULL;
    if (!resp || !out)
        return CB_ERR_INVALID;
    if (!resp->body || resp->body_len == 0)
        return CB_ERR_PARSE;
    /* Bounded by body_len: the body may hold a NUL or, from a user-built
     * response, no terminator at all. cJSON stops after one value without
     * looking further, so the rest is checked here to refuse trailing data.
     * On success cJSON sets end to where the value ended, within body_len. */
    root = cJSON_ParseWithLengthOpts(resp->body, resp->body_len, &end, 0);
    if (!root)
        return CB_ERR_PARSE;
    stop = resp->body + resp->body_len;
    while (end < stop && json_is_space(*end))
        end++;
    if (end != stop) {
        cJSON_Delete(root);
        return CB_ERR_PARSE;
    }
    *out = root;
    return CB_OK;
}

static void json_fail_response(api_response *resp, const char *msg)
{
    if (resp)
        cbh_response_fail(resp, msg);
}

CB_EXPORT cb_err api_request_json(api_client *c, const char *method, const char *path,
                                  const struct cJSON *json, const api_options *opts,
                                  api_response *resp)
{
    api_options o;
    char       *text;
    cb_err      rc;

    if (!json) {
        json_fail_response(resp, "api_request_json: json is NULL");
        return CB_ERR_INVALID;
    }
    if (opts)
        o = *opts;
    else
        memset(&o, 0, sizeof o);
    if (!o.content_type)
        o.content_type = "application/json";
    /* Printed and freed through cJSON's own hooks, which are the ones in
     * force for the whole call. */
    text = cJSON_PrintUnformatted(json);
    if (!text) {
        json_fail_response(resp, "api_request_json: out of memory printing JSON");
        return CB_ERR_NOMEM;
    }
    rc = api_request(c, method, path, text, strlen(text), &o, resp);
    cJSON_free(text);
    return rc;
}
