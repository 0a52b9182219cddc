/* The api_response owner (see response.h). */
#include <stdio.h>
#include <string.h>

#include "alloc.h"
#include "headers.h"
#include "response.h"

/* Handed out as the body of a response that has none. api_response_free
 * knows not to free it. */
static char empty_body[1];

void cbh_payload_free(cbh_payload *p)
{
    if (!p)
        return;
    cbh_free(p->body);
    cbh_free(p->headers);
    memset(p, 0, sizeof(*p));
}

void cbh_response_clear_payload(api_response *resp)
{
    if (resp->body != empty_body)
        cbh_free(resp->body);
    cbh_free(resp->headers);
    resp->body = NULL;
    resp->body_len = 0;
    resp->headers = NULL;
    resp->header_count = 0;
    resp->headers_size_ = 0;
    resp->status = 0;
}

void cbh_response_set_payload(api_response *resp, cbh_payload *p)
{
    cbh_response_clear_payload(resp);
    resp->status = p->status;
    resp->body = p->body;
    resp->body_len = p->body_len;
    resp->headers = p->headers;
    resp->header_count = p->header_count;
    resp->headers_size_ = p->headers_size;
    memset(p, 0, sizeof(*p));
}

void cbh_response_take_payload(api_response *resp, cbh_payload *out)
{
    out->status = resp->status;
    out->body = resp->body != empty_body ? resp->body : NULL;
    out->body_len = resp->body_len;
    out->headers = resp->headers;
    out->header_count = resp->header_count;
    out->headers_size = resp->headers_size_;
    resp->body = NULL;
    resp->headers = NULL;
    cbh_response_clear_payload(resp);
}

void cbh_response_fail(api_response *resp, const char *msg)
{
    memset(resp, 0, sizeof(*resp));
    resp->body = empty_body;
    snprintf(resp->error, sizeof(resp->error), "%s", msg);
}

void cbh_response_complete(api_response *resp)
{
    if (!resp->body)
        resp->body = empty_body;
}

CB_EXPORT void api_response_free(api_response *resp)
{
    if (!resp)
        return;
    cbh_response_clear_payload(resp);
    memset(resp, 0, sizeof(*resp));
}

CB_EXPORT const char *api_response_header(const api_response *resp, const char *name)
{
    if (!resp || !name)
        return NULL;
    return cbh_headers_get(resp->headers, resp->header_count, name);
}
