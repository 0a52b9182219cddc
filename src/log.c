#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cbhttp.h"
#include "alloc.h"
#include "log.h"

CB_EXPORT const char *api_log_level_name(api_log_level level)
{
    switch (level) {
    case API_LOG_DEBUG:
        return "DEBUG";
    case API_LOG_INFO:
        return "INFO";
    case API_LOG_WARN:
        return "WARN";
    case API_LOG_ERROR:
        return "ERROR";
    }
    return "UNKNOWN";
}

/* Assembles prefix, msg and newline in dst (which holds n bytes). */
static void log_compose(char *dst, size_t n, const char *name, const char *msg)
{
    snprintf(dst, n, "cbhttp %s: %s\n", name, msg);
}

CB_EXPORT void api_log_stderr(api_log_level level, const char *msg, void *user_data)
{
    /* One line goes out in one stdio call: stderr is unbuffered, so this is
     * one write(2) and lines from several threads (or processes sharing the
     * descriptor) do not interleave mid-line. */
    char        stackbuf[1024];
    const char *name = api_log_level_name(level);
    size_t      need;
    char       *line;

    (void)user_data;
    if (!msg)
        msg = "";
    need = strlen("cbhttp ") + strlen(name) + strlen(": ") + strlen(msg) + 2;
    if (need <= sizeof stackbuf) {
        log_compose(stackbuf, sizeof stackbuf, name, msg);
        fputs(stackbuf, stderr);
        return;
    }
    line = cbh_malloc(need);
    if (line) {
        log_compose(line, need, name, msg);
        fputs(line, stderr);
        cbh_free(line);
        return;
    }
    /* Out of memory for a very long line: the stdio lock still keeps other
     * threads of this process from writing into the middle of it. */
    flockfile(stderr);
    fprintf(stderr, "cbhttp %s: ", name);
    fputs(msg, stderr);
    fputc('\n', stderr);
    funlockfile(stderr);
}

void cbh_log(api_log_fn fn, void *ud, api_log_level min, api_log_level level, const char *fmt, ...)
{
    char    line[CBH_LOG_LINE_MAX];
    va_list ap;
    int     n;

    if (!fn || level < min)
        return;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) /* a conversion that cannot be encoded: no line at all */
        return;
    /* A cut line says so, rather than looking complete. */
    if ((size_t)n >= sizeof line)
        memcpy(line + sizeof line - 4, "...", 4);
    fn(level, line, ud);
}
