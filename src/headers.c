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
 * "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA. One byte per
 * byte value: this runs for every byte of every header name of every
 * response, and a lookup is the cheapest test. */
static const unsigned char tchar_table[256] = {
    /* clang-format off */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0, /* 0x20  !"#$%&'()*+,-./ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, /* 0x30 0-9 :;<=>? */
    0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 @A-O */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, /* 0x50 P-Z [\]^_ */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 `a-o */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, /* 0x70 p-z {|}~ DEL */
    /* clang-format on */
    /* 0x80-0xff: 0 */
};

bool cbh_is_tchar(unsigned char ch) { return tchar_table[ch]; }

static inline bool headers_is_ows(char ch) { return ch == ' ' || ch == '\t'; }

/* Trims optional whitespace (and a stray CR) from both ends of [*s, *s+*n). */
static inline void headers_trim(const char **s, size_t *n)
{
    while (*n > 0 && headers_is_ows(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && (headers_is_ows((*s)[*n - 1]) || (*s)[*n - 1] == '\r'))
        (*n)--;
}

/* While a block is built, entry i holds the offsets of its name and value
 * from the start of the strings (which move when the entries grow); they
 * become pointers when the block is handed over. */
typedef struct acc_entry {
    size_t name, value;
} acc_entry;

_Static_assert(sizeof(acc_entry) <= sizeof(api_header), "an entry's offsets fit in its slot");

/* The first allocation: room for most responses (nginx sends 5 headers
 * in 130 bytes), 384 bytes held while a response arrives. */
#define ACC_FIRST_SLOTS 8    /* entries */
#define ACC_FIRST_BYTES 256u /* string bytes */

static char *acc_strings(const cbh_headers_acc *a)
{
    return a->blk + a->slots * sizeof(api_header);
}

static void acc_set_entry(cbh_headers_acc *a, size_t i, size_t name, size_t value)
{
    acc_entry e = { name, value };

    memcpy(a->blk + i * sizeof(api_header), &e, sizeof(e));
}

/* Makes room for one more entry and n more string bytes; false on OOM or
 * sizes no allocation could hold. Doubling: a block grows a few times at
 * most. */
static bool acc_grow(cbh_headers_acc *a, size_t n)
{
    size_t slots = a->slots, strcap = a->strcap, total;
    char  *blk;

    if (a->count == slots)
        slots = slots ? slots * 2 : ACC_FIRST_SLOTS;
    if (n > strcap - a->bytes) {
        if (n > SIZE_MAX / 2 - a->bytes)
            return false;
        strcap = strcap ? strcap : ACC_FIRST_BYTES;
        while (strcap < a->bytes + n)
            strcap *= 2;
    }
    if (!headers_block_size(slots, strcap, &total) || !(blk = cbh_realloc(a->blk, total)))
        return false;
    /* More entries: the strings move up behind them. */
    if (slots != a->slots)
        memmove(blk + slots * sizeof(api_header), blk + a->slots * sizeof(api_header), a->bytes);
    a->blk = blk;
    a->slots = slots;
    a->strcap = strcap;
    return true;
}

/* Room for one more entry and n more string bytes. */
static inline bool acc_reserve(cbh_headers_acc *a, size_t n)
{
    return (a->count < a->slots && n <= a->strcap - a->bytes) || acc_grow(a, n);
}

/* obs-fold: seg continues the last header's value, after one space. */
static void acc_fold(cbh_headers_acc *a, const char *seg, size_t n)
{
    char *dst = acc_strings(a) + a->bytes - 1; /* over the value's NUL */

    if (a->value_len > 0)
        *dst++ = ' ';
    memcpy(dst, seg, n);
    dst[n] = '\0';
    a->bytes += n + (a->value_len > 0 ? 1 : 0);
    a->value_len += n + (a->value_len > 0 ? 1 : 0);
}

bool cbh_headers_acc_line(cbh_headers_acc *a, const char *line, size_t n)
{
    const char *val;
    size_t      name_len, vlen;
    char       *dst;

    if (n > 0 && line[n - 1] == '\n')
        n--;
    if (n > 0 && line[n - 1] == '\r')
        n--;
    if (n == 0) {
        a->last_valid = a->in_block = false;
        return true;
    }
    if (headers_is_ows(line[0])) {
        if (!a->last_valid)
            return true;
        headers_trim(&line, &n);
        if (n == 0)
            return true;
        /* The segment and the space that joins it. */
        if (!acc_reserve(a, n + 1))
            return false;
        acc_fold(a, line, n);
        return true;
    }
    a->last_valid = false;
    /* The name is a token ending at the first colon: a line with another
     * byte before its colon, or without one, is dropped. One scan finds
     * both, the colon being no token character. */
    for (name_len = 0; name_len < n && tchar_table[(unsigned char)line[name_len]]; name_len++)
        ;
    if (name_len == 0 || name_len == n || line[name_len] != ':')
        return true;
    val = line + name_len + 1;
    vlen = n - name_len - 1;
    headers_trim(&val, &vlen);
    /* The colon and the line end become the two NULs. */
    if (!acc_reserve(a, name_len + vlen + 2))
        return false;
    dst = acc_strings(a) + a->bytes;
    memcpy(dst, line, name_len);
    dst[name_len] = '\0';
    memcpy(dst + name_len + 1, val, vlen);
    dst[name_len + 1 + vlen] = '\0';
    a->last_name = a->bytes;
    a->last_value = a->bytes + name_len + 1;
    acc_set_entry(a, a->count++, a->last_name, a->last_value);
    a->bytes += name_len + vlen + 2;
    a->value_len = vlen;
    a->last_valid = true;
    return true;
}

void cbh_headers_acc_finish(cbh_headers_acc *a, api_header **out, size_t *count, size_t *size)
{
    api_header *h = (api_header *)(void *)a->blk;
    char       *strings;
    size_t      i;

    *out = NULL;
    *count = *size = 0;
    if (a->count == 0) {
        cbh_headers_acc_free(a);
        return;
    }
    /* The strings move down behind the entries in use, so that a block is
     * exactly count entries and their strings. */
    strings = a->blk + a->count * sizeof(api_header);
    if (a->count < a->slots)
        memmove(strings, acc_strings(a), a->bytes);
    for (i = 0; i < a->count; i++) {
        acc_entry e;

        memcpy(&e, a->blk + i * sizeof(api_header), sizeof(e));
        h[i].name = strings + e.name;
        h[i].value = strings + e.value;
    }
    *out = h;
    *count = a->count;
    *size = a->count * sizeof(api_header) + a->bytes;
    memset(a, 0, sizeof(*a));
}

void cbh_headers_acc_free(cbh_headers_acc *a)
{
    cbh_free(a->blk);
    memset(a, 0, sizeof(*a));
}

cb_err cbh_headers_parse(const char *raw, size_t len, api_header **out, size_t *count, size_t *size)
{
    cbh_headers_acc a = { 0 };
    size_t          pos = 0;

    if (!out || !count || !size || (!raw && len > 0))
        return CB_ERR_INVALID;
    *out = NULL;
    *count = *size = 0;
    /* The rules of the header callback (transport.c), over a whole block:
     * a status line between blocks starts a new response, whose headers
     * replace an earlier one's. */
    while (pos < len) {
        const char *line = raw + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t      n = nl ? (size_t)(nl - line) : len - pos;

        pos += n + (nl ? 1 : 0);
        if (!cbh_headers_acc_status(&a, line, n) && !cbh_headers_acc_line(&a, line, n)) {
            cbh_headers_acc_free(&a);
            return CB_ERR_NOMEM;
        }
    }
    cbh_headers_acc_finish(&a, out, count, size);
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
