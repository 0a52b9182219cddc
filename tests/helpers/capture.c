#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "capture.h"

bool tu_capture_start(tu_capture *c, int fd)
{
    FILE *tmp;

    c->fd = fd;
    c->saved = -1;
    c->tmp = -1;
    fflush(NULL);
    /* tmpfile is unlinked already: nothing is left behind by a crash. */
    tmp = tmpfile();
    if (!tmp)
        return false;
    c->tmp = dup(fileno(tmp));
    fclose(tmp);
    c->saved = dup(fd);
    if (c->tmp < 0 || c->saved < 0 || dup2(c->tmp, fd) < 0) {
        if (c->tmp >= 0)
            close(c->tmp);
        if (c->saved >= 0)
            close(c->saved);
        c->tmp = c->saved = -1;
        return false;
    }
    return true;
}

char *tu_capture_end(tu_capture *c, size_t *len)
{
    char *data = NULL;
    off_t size;

    if (c->saved < 0)
        return NULL;
    fflush(NULL);
    dup2(c->saved, c->fd);
    close(c->saved);
    c->saved = -1;
    size = lseek(c->tmp, 0, SEEK_END);
    if (size >= 0 && (data = malloc((size_t)size + 1)) != NULL) {
        size_t got = 0;

        while (got < (size_t)size) {
            ssize_t n = pread(c->tmp, data + got, (size_t)size - got, (off_t)got);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        data[got] = '\0';
        if (len)
            *len = got;
    }
    close(c->tmp);
    c->tmp = -1;
    return data;
}
