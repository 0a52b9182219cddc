/* Response header blocks and request header line validation.
 *
 * A block is one allocation: an api_header array of `count` entries, then
 * the NUL-terminated names and values it points to. Copying one is a single
 * malloc, a memcpy and a pointer relocation, which keeps cache hits cheap. */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "alloc.h"
#include "headers.h"

/* The size of a block of count entries and bytes of strings; false when it
 * does not fit in a size_t (no allocation could hold it). */
static bool headers_block_size(size_t count, size_t bytes, size_t *total)
{
    if (count > (SIZE_MAX - bytes) / sizeof(api_header))
        return false;
    *total = count * sizeof(api_header) + bytes;
    return true;
}

/* RFC 9110 5.6.2: tchar = "!" / "#" / "$" / "%" / "&" / "'" / "*" / "+" /
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. */
bool cbh_is_tchar(unsigned char ch)
{
    /* One bit per ASCII byte: this runs for every byte of every header
     * name of every response. */
    static const uint64_t lo = 0x03ff6cfa00000000ull, hi = 0x57ffffffc7fffffeull;

    return ch < 64 ? (lo >> ch) & 1 : ch < 128 && ((hi >> (ch - 64)) & 1);
}

static bool headers_is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* Trims optional whitespace (and a stray CR) from both ends of [*s, *s+*n). */
static void headers_trim(const char **s, size_t *n)
{
    while (*n > 0 && headers_is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && (headers_is_ows((*s)[*n - 1]) || (*s)[*n - 1] == '\r'))
        (*n)--;
}

/* The offset just past the last status line. A status line starts a new
 * response (1xx, redirects), whose headers replace an earlier one's. */
/* Where the last response's header lines begin (after its status line),
 * and how many lines follow: at most that many headers. */
static size_t headers_last_start(const char *raw, size_t len, size_t *lines)
{
    size_t pos = 0, start = 0;

    *lines = 0;
    while (pos < len) {
        const char *line = raw + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t      n = nl ? (size_t)(nl - line) : len - pos;

        pos += n + (nl ? 1 : 0);
        if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
            start = pos;
            *lines = 0;
        } else {
            (*lines)++;
        }
    }
    return start;
}

/*
 * Writes the headers of the raw block (the lines after its last status
 * line) into arr and their strings into strings, both sized for the worst
 * case by cbh_headers_parse; reports how many headers and string bytes.
 */
static void headers_scan(const char *raw, size_t len, api_header *arr, char *strings,
                         size_t *count_out, size_t *bytes_out)
{
    size_t count = 0, bytes = 0, pos = 0;
    size_t value_len = 0; /* length of the value being built (the last one) */
    bool   last_valid = false;

    while (pos < len) {
        const char *line = raw + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t      n = nl ? (size_t)(nl - line) : len - pos;
        const char *colon;

        pos += n + (nl ? 1 : 0);
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 0) {
            last_valid = false;
            continue;
        }
        if (headers_is_ows(line[0])) {
            /* obs-fold: the line continues the previous header's value. */
            const char *seg = line;
            size_t      seg_len = n;

            if (!last_valid)
                continue;
            headers_trim(&seg, &seg_len);
            if (seg_len == 0)
                continue;
            {
                char *dst = strings + bytes - 1; /* over the value's NUL */

                if (value_len > 0)
                    *dst++ = ' ';
                memcpy(dst, seg, seg_len);
                dst[seg_len] = '\0';
            }
            bytes += seg_len + (value_len > 0 ? 1 : 0);
            value_len += seg_len + (value_len > 0 ? 1 : 0);
            continue;
        }
        colon = memchr(line, ':', n);
        last_valid = false;
        if (!colon || colon == line)
            continue;
        {
            size_t      name_len = (size_t)(colon - line), i;
            const char *val = colon + 1;
            size_t      vlen = n - name_len - 1;
            bool        ok = true;

            for (i = 0; i < name_len && ok; i++)
                ok = cbh_is_tchar((unsigned char)line[i]);
            if (!ok)
                continue;
            headers_trim(&val, &vlen);
            {
                char *name = strings + bytes;
                char *value = name + name_len + 1;

                memcpy(name, line, name_len);
                name[name_len] = '\0';
                memcpy(value, val, vlen);
                value[vlen] = '\0';
                arr[count].name = name;
                arr[count].value = value;
            }
            count++;
            bytes += name_len + 1 + vlen + 1;
            value_len = vlen;
            last_valid = true;
        }
    }
    *count_out = count;
    *bytes_out = bytes;
}

/* Moves the strings of a block written with room for `slots` entries down
 * behind its n real ones, so that a block is exactly count entries and
 * their strings, whatever the number of lines it came from. */
static void headers_close_gap(api_header *block, size_t n, size_t slots, size_t bytes)
{
    size_t gap = (slots - n) * sizeof(api_header), i;

    memmove(block + n, block + slots, bytes);
    for (i = 0; i < n; i++) {
        block[i].name -= gap;
        block[i].value -= gap;
    }
}

cb_err cbh_headers_parse(const char *raw, size_t len, api_header **out, size_t *count, size_t *size)
{
    size_t      n = 0, bytes = 0, lines, total, start;
    api_header *block;

    if (!out || !count || !size || (!raw && len > 0))
        return CB_ERR_INVALID;
    *out = NULL;
    *count = *size = 0;
    if (len == 0)
        return CB_OK;
    start = headers_last_start(raw, len, &lines);
    raw += start;
    len -= start;
    if (lines == 0)
        return CB_OK;
    /* One writing pass into a block sized for the worst case: at most one
     * entry per line, and the strings never outgrow the lines they come
     * from (a colon and a line end become the two NULs; a folded line
     * loses at least the blank it began with), plus one NUL for a last
     * line without its end. Counting first cost a whole second pass over
     * every response. */
    if (len == SIZE_MAX || !headers_block_size(lines, len + 1, &total))
        return CB_ERR_NOMEM;
    block = cbh_malloc(total);
    if (!block)
        return CB_ERR_NOMEM;
    headers_scan(raw, len, block, (char *)(block + lines), &n, &bytes);
    if (n == 0) {
        cbh_free(block);
        return CB_OK;
    }
    if (n < lines)
        headers_close_gap(block, n, lines, bytes);
    *out = block;
    *count = n;
    *size = n * sizeof(api_header) + bytes;
    return CB_OK;
}

cb_err cbh_headers_dup(const api_header *h, size_t count, size_t size, api_header **out)
{
    api_header *block;
    const char *old_base = (const char *)h;
    char       *new_base;
    size_t      i;

    if (!out)
        return CB_ERR_INVALID;
    *out = NULL;
    if (!h || count == 0 || size == 0)
        return CB_OK;
    /* Divided, not multiplied: a count near SIZE_MAX / sizeof would wrap
     * the product into a size that passes. */
    if (count > size / sizeof(api_header))
        return CB_ERR_INVALID;
    block = cbh_malloc(size);
    if (!block)
        return CB_ERR_NOMEM;
    memcpy(block, h, size);
    new_base = (char *)block;
    /* The strings sit inside the same block, so their offsets carry over. */
    for (i = 0; i < count; i++) {
        block[i].name = new_base + (h[i].name - old_base);
        block[i].value = new_base + (h[i].value - old_base);
    }
    *out = block;
    return CB_OK;
}

cb_err cbh_headers_build(const api_header *list, size_t count, api_header **out, size_t *size)
{
    size_t      i, bytes = 0, total;
    api_header *block;
    char       *p;

    if (!out || !size || (!list && count > 0))
        return CB_ERR_INVALID;
    *out = NULL;
    *size = 0;
    if (count == 0)
        return CB_OK;
    for (i = 0; i < count; i++) {
        size_t nl, vl;

        if (!list[i].name || !list[i].value)
            return CB_ERR_INVALID;
        /* Each string is in memory, so its length + 1 fits; the sum may not. */
        nl = strlen(list[i].name) + 1;
        vl = strlen(list[i].value) + 1;
        if (nl > SIZE_MAX - bytes || vl > SIZE_MAX - bytes - nl)
            return CB_ERR_NOMEM;
        bytes += nl + vl;
    }
    if (!headers_block_size(count, bytes, &total))
        return CB_ERR_NOMEM;
    block = cbh_malloc(total);
    if (!block)
        return CB_ERR_NOMEM;
    p = (char *)(block + count);
    for (i = 0; i < count; i++) {
        size_t nl = strlen(list[i].name) + 1, vl = strlen(list[i].value) + 1;

        memcpy(p, list[i].name, nl);
        block[i].name = p;
        p += nl;
        memcpy(p, list[i].value, vl);
        block[i].value = p;
        p += vl;
    }
    *out = block;
    *size = total;
    return CB_OK;
}

cb_err cbh_headers_edit(const api_header *h, size_t                      count,
                        bool (*drop)(const char *name, void *ctx), void *ctx, const api_header *add,
                        size_t nadd, api_header **out, size_t *out_count, size_t *out_size)
{
    size_t      i, n = 0, bytes = 0, total;
    api_header *block;
    char       *p;

    if (!out || !out_count || !out_size || (!h && count) || (!add && nadd))
        return CB_ERR_INVALID;
    *out = NULL;
    *out_count = *out_size = 0;
    /* Each string is in memory, so its length + 1 fits; the sums may not. */
    for (i = 0; i < count + nadd; i++) {
        const api_header *x = i < count ? &h[i] : &add[i - count];
        size_t            len;

        if (i < count && drop && drop(x->name, ctx))
            continue;
        len = strlen(x->name) + 1;
        if (len > SIZE_MAX - bytes)
            return CB_ERR_NOMEM;
        bytes += len;
        len = strlen(x->value) + 1;
        if (len > SIZE_MAX - bytes)
            return CB_ERR_NOMEM;
        bytes += len;
        n++;
    }
    if (n == 0)
        return CB_OK;
    if (!headers_block_size(n, bytes, &total))
        return CB_ERR_NOMEM;
    block = cbh_malloc(total);
    if (!block)
        return CB_ERR_NOMEM;
    p = (char *)(block + n);
    n = 0;
    for (i = 0; i < count + nadd; i++) {
        const api_header *x = i < count ? &h[i] : &add[i - count];
        size_t            nl, vl;

        if (i < count && drop && drop(x->name, ctx))
            continue;
        nl = strlen(x->name) + 1;
        vl = strlen(x->value) + 1;
        block[n].name = memcpy(p, x->name, nl);
        p += nl;
        block[n].value = memcpy(p, x->value, vl);
        p += vl;
        n++;
    }
    *out = block;
    *out_count = n;
    *out_size = total;
    return CB_OK;
}

bool cbh_list_has(const char *value, const char *tok, size_t len)
{
    const char *p = value;

    if (!value || !tok)
        return false;
    while (*p) {
        const char *start;
        size_t      n;

        while (*p == ',' || headers_is_ows(*p))
            p++;
        start = p;
        while (*p && *p != ',')
            p++;
        n = (size_t)(p - start);
        while (n > 0 && headers_is_ows(start[n - 1]))
            n--;
        if (n >= 2 && start[0] == '"' && start[n - 1] == '"') {
            start++;
            n -= 2;
        }
        if (n == len && len > 0 && strncasecmp(start, tok, len) == 0)
            return true;
    }
    return false;
}

const char *cbh_headers_get(const api_header *h, size_t count, const char *name)
{
    size_t i;

    if (!h || !name)
        return NULL;
    for (i = 0; i < count; i++)
        if (strcasecmp(h[i].name, name) == 0)
            return h[i].value;
    return NULL;
}

bool cbh_header_line_valid(const char *line)
{
    const unsigned char *p = (const unsigned char *)line;

    if (!p || !cbh_is_tchar(*p))
        return false;
    while (cbh_is_tchar(*p))
        p++;
    if (*p++ != ':')
        return false;
    /* Field values: VCHAR, obs-text, SP and HTAB; every other control
     * character (CR and LF above all: header injection) is refused. */
    for (; *p; p++)
        if ((*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

bool cbh_header_line_is(const char *line, const char *name)
{
    size_t n;

    if (!line || !name)
        return false;
    n = strlen(name);
    return n > 0 && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

const char *cbh_header_line_value(const char *line, const char *name, size_t *len)
{
    const char *v;
    size_t      n;

    if (!cbh_header_line_is(line, name))
        return NULL;
    v = line + strlen(name) + 1;
    n = strlen(v);
    headers_trim(&v, &n);
    if (len)
        *len = n;
    return v;
}
