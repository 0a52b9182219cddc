/* Response headers: one allocation holding an api_header array followed by
 * its strings, so that a response and a cache entry copy them with one
 * memcpy. Also validation of header lines the caller sends. */
#ifndef CBH_HEADERS_H
#define CBH_HEADERS_H

#include <string.h>

#include "cbhttp.h"

/* Builds an array from a raw header block ("Name: value\r\n" lines, as
 * libcurl hands them over; the status line and blank lines are skipped,
 * obsolete line folding is joined, lines without ':' are dropped).
 * *size receives the bytes of the block. An empty block gives NULL/0/0.
 * Names are kept as sent; values lose their surrounding whitespace; a line
 * whose name is not a token is dropped. When the block holds several
 * responses (a 1xx or a redirect before the final one), only the headers
 * after the last status line are kept. Free the block with cbh_free.
 * Returns CB_OK, CB_ERR_NOMEM or CB_ERR_INVALID (NULL out pointers). */
cb_err cbh_headers_parse(const char *raw, size_t len, api_header **out, size_t *count,
                         size_t *size);

/* A block built one line at a time, as a response's header lines arrive
 * (the transport's header callback), by the rules of cbh_headers_parse;
 * it lives inside its exchange and owns its memory until finished.
 * Zero-initialise it. */
typedef struct cbh_headers_acc {
    char  *blk;   /* the entries (offsets until finished), then the strings */
    size_t slots; /* entries the allocation has room for */
    size_t count;
    size_t strcap; /* string bytes the allocation has room for */
    size_t bytes;
    size_t value_len; /* the last value's length, which a folded line extends */
    size_t last_name; /* the last header's name and value, as offsets in the strings */
    size_t last_value;
    bool   last_valid;
    bool   in_block; /* a status line came, and the blank line after it not yet */
} cbh_headers_acc;

/* Whether line (n bytes, its line end included or not) is a status line
 * that starts a response's block: only between blocks, since inside one a
 * line that begins "HTTP/" is a malformed field. When it is, the block
 * starts over (a 1xx or a redirect before the final response), keeping
 * its memory. Inline: the header callback asks it of every line. */
static inline bool cbh_headers_acc_status(cbh_headers_acc *a, const char *line, size_t n)
{
    if (a->in_block || n < 5 || memcmp(line, "HTTP/", 5) != 0)
        return false;
    a->count = a->bytes = a->value_len = 0;
    a->last_valid = false;
    a->in_block = true;
    return true;
}
/* One header line, its line end ("\r\n" or "\n") included or not; an
 * empty one ends the block. False on OOM (the block is then left as it
 * was). */
bool cbh_headers_acc_line(cbh_headers_acc *a, const char *line, size_t n);
/* The last header of the block (count > 0), its value as it stands (a
 * folded line may still extend it); the pointers stay valid until the next
 * call on a. Inline: the header callback asks for every header. */
static inline void cbh_headers_acc_last(const cbh_headers_acc *a, const char **name,
                                        size_t *name_len, const char **value, size_t *value_len)
{
    const char *strings = a->blk + a->slots * sizeof(api_header);

    *name = strings + a->last_name;
    *name_len = a->last_value - a->last_name - 1;
    *value = strings + a->last_value;
    *value_len = a->bytes - a->last_value - 1;
}
/* Hands the block over as cbh_headers_parse does (NULL/0/0 when it has no
 * header) and leaves a empty. */
void cbh_headers_acc_finish(cbh_headers_acc *a, api_header **out, size_t *count, size_t *size);
/* Drops what a holds. */
void cbh_headers_acc_free(cbh_headers_acc *a);

/* Copies a block made by cbh_headers_parse (or this function). Returns
 * CB_ERR_INVALID when count entries cannot fit in size bytes (NULL out),
 * CB_ERR_NOMEM when the copy cannot be allocated. */
cb_err cbh_headers_dup(const api_header *h, size_t count, size_t size, api_header **out);

/* Packs count name/value pairs (pointing anywhere) into a new block, in
 * order; *size receives its bytes. count 0 gives NULL/0. */
cb_err cbh_headers_build(const api_header *list, size_t count, api_header **out, size_t *size);

/* Builds a new block from h: its entries for which drop(name, ctx) is
 * false (drop NULL keeps them all), in order, then the nadd entries of add
 * (pointing anywhere). One allocation; *out_count and *out_size receive
 * its entries and bytes (NULL/0/0 when empty). CB_ERR_NOMEM on OOM or
 * sizes no allocation could hold, CB_ERR_INVALID for NULL out pointers. */
cb_err cbh_headers_edit(const api_header *h, size_t                      count,
                        bool (*drop)(const char *name, void *ctx), void *ctx, const api_header *add,
                        size_t nadd, api_header **out, size_t *out_count, size_t *out_size);

/* True when the comma-separated list value (elements trimmed of OWS, an
 * element's quotes ignored) holds an element equal to tok[0..len)
 * case-insensitively. */
bool cbh_list_has(const char *value, const char *tok, size_t len);

/* The first value of name (case-insensitive), or NULL. */
const char *cbh_headers_get(const api_header *h, size_t count, const char *name);

/* True for a request header line "Name: value": a token name, a colon, and
 * a value with no CR, LF or other control character but tab. */
bool cbh_header_line_valid(const char *line);

/* True when line's name is name (case-insensitive). */
bool cbh_header_line_is(const char *line, const char *name);

/* When line's name is name: its value without surrounding whitespace (not
 * NUL-terminated at *len: trailing whitespace may follow), else NULL. */
const char *cbh_header_line_value(const char *line, const char *name, size_t *len);

/* A token character of RFC 9110 5.6.2. */
bool cbh_is_tchar(unsigned char ch);

#endif
