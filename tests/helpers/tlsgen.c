#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tlsgen.h"

extern char **environ;

/* dir/name into out; false when it does not fit. */
static bool tls_path(char *out, const tu_tls *t, const char *name, const char *ext)
{
    int n = snprintf(out, TU_TLS_PATH, "%s/%s%s", t->dir, name, ext);
    return n > 0 && n < TU_TLS_PATH;
}

static void tls_dump_log(const tu_tls *t)
{
    char  path[TU_TLS_PATH];
    char *log;

    if (!tls_path(path, t, "openssl", ".log") || !(log = tu_read_file(path, NULL)))
        return;
    fprintf(stderr, "tlsgen: openssl output:\n%s\n", log);
    free(log);
}

/* Runs openssl with argv (argv[0] is "openssl"), without a shell, its
 * output appended to DIR/openssl.log; true when it exits with 0. */
static bool tls_run(const tu_tls *t, const char *const argv[])
{
    posix_spawn_file_actions_t fa;
    char                       log[TU_TLS_PATH];
    pid_t                      pid;
    int                        status = 0, rc;

    if (!tls_path(log, t, "openssl", ".log"))
        return false;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log, O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    rc = posix_spawnp(&pid, "openssl", &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "tlsgen: cannot run openssl: %s (install the openssl package)\n",
                strerror(rc));
        return false;
    }
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return false;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "tlsgen: openssl %s failed\n", argv[1]);
        tls_dump_log(t);
        return false;
    }
    return true;
}

static bool tls_write(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    bool  ok;

    if (!fp)
        return false;
    ok = fputs(text, fp) >= 0;
    return fclose(fp) == 0 && ok;
}

bool tu_tls_issue(tu_tls *t, const char *name, const char *san, bool self_signed, tu_tls_cert *out)
{
    char csr[TU_TLS_PATH], ext[TU_TLS_PATH], subj[256], extv[1024], serial[32], sanv[1024];

    if (!tls_path(out->pem, t, name, ".pem") || !tls_path(out->key, t, name, ".key") ||
        !tls_path(csr, t, name, ".csr") || !tls_path(ext, t, name, ".ext"))
        return false;
    snprintf(subj, sizeof subj, "/CN=cbhttp test %s", name);
    if (self_signed) {
        snprintf(sanv, sizeof sanv, "subjectAltName=%s", san);
        const char *argv[] = { "openssl",
                               "req",
                               "-x509",
                               "-newkey",
                               "ec",
                               "-pkeyopt",
                               "ec_paramgen_curve:prime256v1",
                               "-nodes",
                               "-keyout",
                               out->key,
                               "-out",
                               out->pem,
                               "-days",
                               "2",
                               "-sha256",
                               "-subj",
                               subj,
                               "-addext",
                               sanv,
                               NULL };
        return tls_run(t, argv);
    }
    {
        const char *argv[] = { "openssl",
                               "req",
                               "-new",
                               "-newkey",
                               "ec",
                               "-pkeyopt",
                               "ec_paramgen_curve:prime256v1",
                               "-nodes",
                               "-keyout",
                               out->key,
                               "-out",
                               csr,
                               "-subj",
                               subj,
                               NULL };
        if (!tls_run(t, argv))
            return false;
    }
    snprintf(extv, sizeof extv,
             "basicConstraints=critical,CA:FALSE\n"
             "keyUsage=critical,digitalSignature\n"
             "extendedKeyUsage=serverAuth\n"
             "subjectAltName=%s\n",
             san);
    if (!tls_write(ext, extv))
        return false;
    snprintf(serial, sizeof serial, "%u", t->serial++);
    {
        const char *argv[] = { "openssl", "x509",    "-req",   "-in",     csr,
                               "-CA",     t->ca.pem, "-CAkey", t->ca.key, "-set_serial",
                               serial,    "-days",   "2",      "-sha256", "-extfile",
                               ext,       "-out",    out->pem, NULL };
        return tls_run(t, argv);
    }
}

bool tu_tls_init(tu_tls *t)
{
    const char *tmp = getenv("TMPDIR");
    int         n;

    memset(t, 0, sizeof *t);
    t->serial = 1000;
    if (!tmp || !*tmp)
        tmp = "/tmp";
    n = snprintf(t->dir, sizeof t->dir, "%s/cbhttp-tls-XXXXXX", tmp);
    if (n <= 0 || n >= (int)sizeof t->dir || !mkdtemp(t->dir)) {
        fprintf(stderr, "tlsgen: cannot create a directory under %s\n", tmp);
        t->dir[0] = '\0';
        return false;
    }
    if (!tls_path(t->ca.pem, t, "ca", ".pem") || !tls_path(t->ca.key, t, "ca", ".key"))
        goto fail;
    {
        const char *argv[] = { "openssl",
                               "req",
                               "-x509",
                               "-newkey",
                               "ec",
                               "-pkeyopt",
                               "ec_paramgen_curve:prime256v1",
                               "-nodes",
                               "-keyout",
                               t->ca.key,
                               "-out",
                               t->ca.pem,
                               "-days",
                               "2",
                               "-sha256",
                               "-subj",
                               "/CN=cbhttp test CA",
                               "-addext",
                               "basicConstraints=critical,CA:TRUE",
                               "-addext",
                               "keyUsage=critical,keyCertSign,cRLSign",
                               NULL };
        if (!tls_run(t, argv))
            goto fail;
    }
    if (!tu_tls_issue(t, "server", "IP:127.0.0.1,IP:::1,DNS:localhost", false, &t->server))
        goto fail;
    return true;
fail:
    tu_tls_cleanup(t);
    return false;
}

void tu_tls_cleanup(tu_tls *t)
{
    DIR           *d;
    struct dirent *e;
    char           path[TU_TLS_PATH + 256];

    if (!t->dir[0])
        return;
    d = opendir(t->dir);
    if (d) {
        /* Flat: every file was made here by tu_tls_init or tu_tls_issue. */
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", t->dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(t->dir);
    t->dir[0] = '\0';
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *data = NULL;
    long  size;

    if (!fp)
        return NULL;
    if (fseek(fp, 0, SEEK_END) == 0 && (size = ftell(fp)) >= 0 && fseek(fp, 0, SEEK_SET) == 0 &&
        (data = malloc((size_t)size + 1)) != NULL) {
        if (fread(data, 1, (size_t)size, fp) != (size_t)size) {
            free(data);
            data = NULL;
        } else {
            data[size] = '\0';
            if (len)
                *len = (size_t)size;
        }
    }
    fclose(fp);
    return data;
}
