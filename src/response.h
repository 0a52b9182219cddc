/* The one owner of api_response: filling, moving and clearing what a
 * response holds. Other modules hand over a cbh_payload (the transport
 * after an exchange, the cache from an entry) and never write into the
 * caller's response; only response.c knows the empty-body sentinel. */
#ifndef CBH_RESPONSE_H
#define CBH_RESPONSE_H

#include "cbhttp.h"

/* What a response carries, owned by whoever holds the struct. */
typedef struct cbh_payload {
    long        status;
    char       *body; /* NUL-terminated; NULL = none */
    size_t      body_len;
    api_header *headers; /* one block (headers.h) */
    size_t      header_count;
    size_t      headers_size; /* bytes of that block */
} cbh_payload;

/* Frees what p holds and empties it. NULL is fine. */
void cbh_payload_free(cbh_payload *p);

/* Moves p into resp, replacing (and freeing) resp's payload; p is emptied. */
void cbh_response_set_payload(api_response *resp, cbh_payload *p);

/* Moves resp's payload out into *out (emptying resp's); the caller owns it. */
void cbh_response_take_payload(api_response *resp, cbh_payload *out);

/* Frees resp's payload and zeroes its status, keeping the call's counters
 * and flags. */
void cbh_response_clear_payload(api_response *resp);

/* Leaves resp as every failed call does: zeroed, an empty body the caller
 * may print, and msg as the error detail. */
void cbh_response_fail(api_response *resp, const char *msg);

/* The last touch of a call: a response without a body gets the empty one,
 * so that callers can always print resp->body. */
void cbh_response_complete(api_response *resp);

#endif
