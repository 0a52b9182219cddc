/* Captures what a test writes to a file descriptor (stderr, typically):
 * the descriptor is pointed at an unlinked temporary file until the capture
 * ends, then restored. Not for use from two threads at once. */
#ifndef CBH_CAPTURE_H
#define CBH_CAPTURE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tu_capture {
    int fd;    /* the descriptor captured */
    int saved; /* a duplicate of what it was */
    int tmp;   /* the temporary file */
} tu_capture;

/* Starts capturing fd (flushing stdio first). false on failure. */
bool tu_capture_start(tu_capture *c, int fd);

/* Ends the capture and returns everything written meanwhile, NUL-terminated,
 * from malloc (free it); *len (if not NULL) gets its size. NULL on failure
 * (the descriptor is restored anyway). */
char *tu_capture_end(tu_capture *c, size_t *len);

#endif
