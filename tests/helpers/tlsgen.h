/*
 * Test certificates made at run time with the openssl command (Debian's
 * `openssl` package): a CA and server certificates, in a temporary
 * directory that tu_tls_cleanup removes. Nothing is checked in and nothing
 * outlives the test. Everything is a file path, so that any server a test
 * starts can use them: the fixture (read the PEM text with tu_read_file and
 * pass it to fixture_start_tls), or nginx (ssl_certificate server.pem,
 * ssl_certificate_key server.key), with the client's ca_file = ca.pem.
 *
 * Keys are ECDSA P-256 (instant to generate); certificates are valid for two
 * days from now. openssl runs through posix_spawnp, its output going to
 * DIR/openssl.log, which is printed to stderr when a step fails.
 */
#ifndef CBH_TLSGEN_H
#define CBH_TLSGEN_H

#include <stdbool.h>
#include <stddef.h>

#define TU_TLS_PATH 512

typedef struct tu_tls_cert {
    char pem[TU_TLS_PATH]; /* the certificate, PEM */
    char key[TU_TLS_PATH]; /* its private key, PEM (PKCS#8), unencrypted */
} tu_tls_cert;

typedef struct tu_tls {
    char        dir[TU_TLS_PATH]; /* the temporary directory holding every file */
    tu_tls_cert ca;               /* the CA; ca.pem is what ca_file names */
    tu_tls_cert server;           /* signed by the CA for IP 127.0.0.1, IP ::1 and
                                     DNS localhost (server.pem, server.key) */
    unsigned    serial;           /* next serial number the CA gives */
} tu_tls;

/* Creates the directory (under $TMPDIR, else /tmp), the CA and the server
 * certificate. false, with the reason on stderr, when openssl is missing or
 * fails; t is then cleaned up already. */
bool tu_tls_init(tu_tls *t);

/*
 * Issues one more certificate into t->dir as NAME.pem and NAME.key. san is
 * an openssl subjectAltName value ("DNS:example.invalid",
 * "IP:127.0.0.1,DNS:localhost"). Signed by t's CA, or by itself when
 * self_signed (a certificate no CA vouches for). false on failure.
 */
bool tu_tls_issue(tu_tls *t, const char *name, const char *san, bool self_signed, tu_tls_cert *out);

/* Removes every file in t->dir and the directory. Safe to call twice. */
void tu_tls_cleanup(tu_tls *t);

/* A whole file, NUL-terminated, from malloc (free it); *len (if not NULL)
 * gets its size. NULL on failure. */
char *tu_read_file(const char *path, size_t *len);

#endif
