/*
 * A private nginx on loopback (see nginx.h). The process runs in the
 * foreground as a child of ours, without a master process, so that it
 * never changes user (as root, workers would become "nobody" and could not
 * read the private directory) and one kill stops it. It gets SIGTERM when
 * the thread that started it exits (PR_SET_PDEATHSIG), so a test killed by
 * its timeout leaves no nginx behind.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "nginx.h"

#define TN_PATH 512
#define TN_TRIES 5       /* ports taken between our pick and nginx's bind */
#define TN_START_MS 5000 /* nginx listens well before this */
#define TN_STOP_MS 5000

struct tu_nginx {
    pid_t          pid;
    bool           has_sleep;
    unsigned short port;
    char           dir[64];
    char           root[80];
    char           url[64];
    char           tls_url[64];
    char           access_log[TN_PATH];
};

static const char *const echo_modules[] = {
    "/usr/lib/nginx/modules/ngx_http_echo_module.so",
    "/usr/lib64/nginx/modules/ngx_http_echo_module.so",
    "/usr/share/nginx/modules/ngx_http_echo_module.so",
};

__attribute__((format(printf, 3, 4))) static void set_why(char *why, size_t len, const char *fmt,
                                                          ...)
{
    va_list ap;

    if (!why || !len)
        return;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
}

const char *tu_nginx_binary(void)
{
    static char found[TN_PATH];
    const char *env = getenv("CBH_NGINX"), *path = getenv("PATH");

    if (env && *env)
        return access(env, X_OK) == 0 ? env : NULL;
    if (access("/usr/sbin/nginx", X_OK) == 0)
        return "/usr/sbin/nginx";
    while (path && *path) {
        size_t n = strcspn(path, ":");

        if (n && n < sizeof(found) - 7) {
            snprintf(found, sizeof(found), "%.*s/nginx", (int)n, path);
            if (access(found, X_OK) == 0)
                return found;
        }
        path += n + (path[n] == ':');
    }
    return NULL;
}

/* A loopback port that was free a moment ago: bound to port 0, then
 * closed. nginx may still lose it to someone else; the caller retries. */
static unsigned short free_port(void)
{
    struct sockaddr_in a = { .sin_family = AF_INET };
    socklen_t          len = sizeof(a);
    int                fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned short     port = 0;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static bool port_open(unsigned short port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    int                fd = socket(AF_INET, SOCK_STREAM, 0);
    bool               ok;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static bool write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    bool  ok;

    if (!fp)
        return false;
    ok = fputs(text, fp) >= 0;
    return fclose(fp) == 0 && ok;
}

static const char *echo_module(void)
{
    size_t i;

    for (i = 0; i < sizeof(echo_modules) / sizeof(echo_modules[0]); i++)
        if (access(echo_modules[i], R_OK) == 0)
            return echo_modules[i];
    return NULL;
}

/* The config for ports port (plain) and tls_port (0: none). */
static bool write_conf(const tu_nginx *n, const tu_nginx_opts *o, const char *module,
                       unsigned short port, unsigned short tls_port)
{
    char        path[TN_PATH];
    FILE       *fp;
    const char *d = n->dir;
    unsigned    conns = o->worker_connections ? o->worker_connections : 1024;

    snprintf(path, sizeof(path), "%s/nginx.conf", d);
    if (!(fp = fopen(path, "w")))
        return false;
    if (module)
        fprintf(fp, "load_module %s;\n", module);
    fprintf(fp,
            "daemon off;\n"
            "master_process off;\n"
            "worker_processes 1;\n"
            "pid %s/nginx.pid;\n"
            "error_log %s/error.log warn;\n"
            "events { worker_connections %u; multi_accept on; }\n"
            "http {\n"
            "  default_type application/octet-stream;\n"
            "  types { application/json json; }\n"
            "  client_body_temp_path %s/body;\n"
            "  proxy_temp_path %s/proxy;\n"
            "  fastcgi_temp_path %s/fastcgi;\n"
            "  uwsgi_temp_path %s/uwsgi;\n"
            "  scgi_temp_path %s/scgi;\n"
            "  keepalive_requests 10000000;\n"
            "  keepalive_timeout 120s;\n"
            "  server_tokens off;\n",
            d, d, conns, d, d, d, d, d);
    if (o->access_log)
        fprintf(fp,
                "  log_format cbh '$connection $connection_requests $server_protocol "
                "\"$request\" $status%s%s';\n"
                "  access_log %s/access.log cbh;\n",
                o->log_extra ? " " : "", o->log_extra ? o->log_extra : "", d);
    else
        fprintf(fp, "  access_log off;\n");
    if (tls_port && o->max_streams)
        fprintf(fp, "  http2_max_concurrent_streams %u;\n", o->max_streams);
    /* A backlog for thousands of connections opened at once (the kernel
     * caps it at net.core.somaxconn); nginx's 511 drops SYNs, which come
     * back only after a 1 s retransmission. */
    fprintf(fp, "  server {\n    listen 127.0.0.1:%u backlog=4096;\n", (unsigned)port);
    if (tls_port)
        fprintf(fp,
                "    listen 127.0.0.1:%u ssl http2 backlog=4096;\n"
                "    ssl_certificate %s;\n"
                "    ssl_certificate_key %s;\n",
                (unsigned)tls_port, o->cert_file, o->key_file);
    fprintf(fp,
            "    root %s/www;\n"
            "    location = /ok { default_type application/json; return 200 '{\"ok\":true}\\n'; }\n"
            "    location /static/ { }\n"
            "    location = /proto {\n"
            "      default_type text/plain;\n"
            "      add_header X-Proto $server_protocol always;\n"
            "      return 200 '$server_protocol';\n"
            "    }\n"
            "    location = /conn {\n"
            "      default_type text/plain;\n"
            "      add_header X-Connection $connection always;\n"
            "      add_header X-Proto $server_protocol always;\n"
            "      return 200 '$connection $connection_requests';\n"
            "    }\n",
            d);
    if (module)
        fprintf(fp, "    location ~ ^/sleep/([0-9.]+)$ { echo_sleep $1; echo slept; }\n");
    if (o->server_conf)
        fprintf(fp, "%s\n", o->server_conf);
    fprintf(fp, "  }\n}\n");
    return fclose(fp) == 0;
}

/* Runs nginx; returns its pid, or -1. */
static pid_t spawn(const tu_nginx *n, const char *bin)
{
    char  conf[TN_PATH], errlog[TN_PATH], out[TN_PATH];
    pid_t pid, parent = getpid();

    snprintf(conf, sizeof(conf), "%s/nginx.conf", n->dir);
    snprintf(errlog, sizeof(errlog), "%s/error.log", n->dir);
    snprintf(out, sizeof(out), "%s/stderr.log", n->dir);
    if ((pid = fork()) != 0)
        return pid;

    /* The child. Without a master process worker_rlimit_nofile is not
     * applied: take the hard limit here for many connections. */
    {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rl.rlim_cur = rl.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    /* nginx ends with us, also when a test times out and is killed. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent)
        _exit(127);
    signal(SIGPIPE, SIG_DFL);
    if (!freopen("/dev/null", "r", stdin) || !freopen(out, "w", stderr) ||
        !freopen("/dev/null", "w", stdout))
        _exit(127);
    /* -e: the log for messages before the config is read (the compiled-in
     * default, /var/log/nginx/error.log, may not be writable). */
    execl(bin, "nginx", "-p", n->dir, "-e", errlog, "-c", conf, (char *)NULL);
    _exit(127);
}

/* The first line of dir/name, for an error message. */
static void first_error(const tu_nginx *n, char *why, size_t len)
{
    static const char *const logs[] = { "stderr.log", "error.log" };
    char                     path[TN_PATH], line[256];
    size_t                   i;

    for (i = 0; i < 2; i++) {
        FILE *fp;

        snprintf(path, sizeof(path), "%s/%s", n->dir, logs[i]);
        if (!(fp = fopen(path, "r")))
            continue;
        while (fgets(line, sizeof(line), fp)) {
            if (strstr(line, "[emerg]") || strstr(line, "[alert]") || strstr(line, "[crit]")) {
                line[strcspn(line, "\n")] = '\0';
                fclose(fp);
                set_why(why, len, strncmp(line, "nginx:", 6) ? "nginx: %s" : "%s", line);
                return;
            }
        }
        fclose(fp);
    }
    set_why(why, len, "%s", "nginx exited at start (CBH_NGINX_KEEP=1 keeps its logs)");
}

static bool address_in_use(const tu_nginx *n)
{
    char  path[TN_PATH], line[512];
    FILE *fp;
    bool  inuse = false;

    snprintf(path, sizeof(path), "%s/error.log", n->dir);
    if (!(fp = fopen(path, "r")))
        return false;
    while (!inuse && fgets(line, sizeof(line), fp))
        inuse = strstr(line, "Address already in use") != NULL;
    fclose(fp);
    return inuse;
}

/* Waits for both ports to accept; 1 up, 0 exited (see the logs), -1 never
 * came up (killed). */
static int await_start(tu_nginx *n, unsigned short port, unsigned short tls_port)
{
    int waited;

    for (waited = 0; waited < TN_START_MS; waited += 10) {
        int status;

        if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
            n->pid = -1;
            return 0;
        }
        if (port_open(port) && (!tls_port || port_open(tls_port)))
            return 1;
        sleep_ms(10);
    }
    kill(n->pid, SIGKILL);
    waitpid(n->pid, NULL, 0);
    n->pid = -1;
    return -1;
}

tu_nginx *tu_nginx_start(const tu_nginx_opts *opts, char *why, size_t why_len)
{
    const char   *bin = tu_nginx_binary(), *module = echo_module();
    tu_nginx_opts o = opts ? *opts : (tu_nginx_opts){ 0 };
    bool          tls = o.cert_file && o.key_file;
    char          path[TN_PATH];
    tu_nginx     *n;
    int           try;

    if (!bin) {
        set_why(why, why_len, "%s",
                "nginx is not installed (scripts/deps.sh installs nginx-light)");
        return NULL;
    }
    if (!(n = calloc(1, sizeof(*n)))) {
        set_why(why, why_len, "%s", "out of memory");
        return NULL;
    }
    n->pid = -1;
    snprintf(n->dir, sizeof(n->dir), "/tmp/cbh-nginx-XXXXXX");
    if (!mkdtemp(n->dir)) {
        set_why(why, why_len, "mkdtemp: %s", strerror(errno));
        free(n);
        return NULL;
    }
    snprintf(n->root, sizeof(n->root), "%s/www", n->dir);
    mkdir(n->root, 0700);
    snprintf(path, sizeof(path), "%s/www/static", n->dir);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/www/static/hello.json", n->dir);
    if (!write_file(path, "{\"ok\":true,\"static\":true}\n")) {
        set_why(why, why_len, "cannot write %s", path);
        tu_nginx_stop(n);
        return NULL;
    }

    set_why(why, why_len, "%s", "nginx: no free port after several tries");
    for (try = 0; try < TN_TRIES; try++) {
        unsigned short port = free_port(), tls_port = tls ? free_port() : 0;
        int            up;

        if (!port || (tls && (!tls_port || tls_port == port)))
            continue;
        snprintf(path, sizeof(path), "%s/error.log", n->dir);
        remove(path);
        if (!write_conf(n, &o, module, port, tls_port)) {
            set_why(why, why_len, "cannot write the config in %s", n->dir);
            break;
        }
        if ((n->pid = spawn(n, bin)) < 0) {
            set_why(why, why_len, "fork: %s", strerror(errno));
            break;
        }
        if ((up = await_start(n, port, tls_port)) == 1) {
            n->has_sleep = module != NULL;
            n->port = port;
            snprintf(n->url, sizeof(n->url), "http://127.0.0.1:%u", (unsigned)port);
            if (tls)
                snprintf(n->tls_url, sizeof(n->tls_url), "https://127.0.0.1:%u",
                         (unsigned)tls_port);
            if (o.access_log)
                snprintf(n->access_log, sizeof(n->access_log), "%s/access.log", n->dir);
            return n;
        }
        if (up < 0) {
            set_why(why, why_len, "%s",
                    "nginx did not listen within 5 s (CBH_NGINX_KEEP=1 keeps its logs)");
            break;
        }
        if (!address_in_use(n)) {
            first_error(n, why, why_len);
            break;
        }
        /* Someone took a port between our pick and nginx's bind: again. */
        set_why(why, why_len, "%s", "nginx: no free port after several tries");
    }
    tu_nginx_stop(n);
    return NULL;
}

const char *tu_nginx_url(const tu_nginx *n) { return n ? n->url : NULL; }

const char *tu_nginx_tls_url(const tu_nginx *n) { return n && n->tls_url[0] ? n->tls_url : NULL; }

const char *tu_nginx_access_log(const tu_nginx *n)
{
    return n && n->access_log[0] ? n->access_log : NULL;
}

bool tu_nginx_has_sleep(const tu_nginx *n) { return n && n->has_sleep; }

const char *tu_nginx_root(const tu_nginx *n) { return n ? n->root : NULL; }

/* root/path in out; false when path is absolute, climbs out (".."), or
 * does not fit. */
static bool root_path(const tu_nginx *n, const char *path, char *out, size_t len)
{
    int w;

    if (!n || !path || path[0] == '/' || strstr(path, ".."))
        return false;
    w = snprintf(out, len, "%s/%s", n->root, path);
    return w > 0 && (size_t)w < len;
}

bool tu_nginx_put_file(const tu_nginx *n, const char *path, const void *body, size_t len,
                       long long mtime)
{
    char  full[TN_PATH], tmp[TN_PATH + 8], *slash;
    FILE *fp;
    bool  ok;

    if (!root_path(n, path, full, sizeof(full)))
        return false;
    /* The directories on the way, each made if missing. */
    for (slash = full + strlen(n->root) + 1; (slash = strchr(slash, '/')); slash++) {
        *slash = '\0';
        if (mkdir(full, 0700) != 0 && errno != EEXIST) {
            *slash = '/';
            return false;
        }
        *slash = '/';
    }
    /* Written beside it and renamed: nginx never reads half a file. */
    snprintf(tmp, sizeof(tmp), "%s.tmp~", full);
    if (!(fp = fopen(tmp, "wb")))
        return false;
    ok = fwrite(body, 1, len, fp) == len;
    ok = fclose(fp) == 0 && ok;
    if (ok && mtime) {
        struct timeval tv[2] = { { .tv_sec = (time_t)mtime }, { .tv_sec = (time_t)mtime } };

        ok = utimes(tmp, tv) == 0;
    }
    ok = ok && rename(tmp, full) == 0;
    if (!ok)
        remove(tmp);
    return ok;
}

bool tu_nginx_remove_file(const tu_nginx *n, const char *path)
{
    char full[TN_PATH];

    if (!root_path(n, path, full, sizeof(full)))
        return false;
    return remove(full) == 0 || errno == ENOENT;
}

/* One request of ours, answered before this returns: every response nginx
 * sent before it has its access.log line written (see nginx.h). */
static void log_sync(const tu_nginx *n)
{
    static const char  req[] = "GET /ok HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(n->port) };
    struct timeval     tv = { .tv_sec = 5 };
    char               sink[512];
    int                fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) == (ssize_t)(sizeof(req) - 1))
        while (recv(fd, sink, sizeof(sink), 0) > 0)
            ; /* HTTP/1.0: nginx closes after its answer */
    close(fd);
}

/* Scans access.log for needle: the count, and the last such line in out. */
static long log_scan(const tu_nginx *n, const char *needle, char *out, size_t len)
{
    char  line[4096];
    FILE *fp;
    long  count = 0;

    if (!n || !n->access_log[0])
        return -1;
    if (n->pid > 0 && n->port)
        log_sync(n);
    if (!(fp = fopen(n->access_log, "r")))
        return 0; /* no request yet */
    while (fgets(line, sizeof(line), fp)) {
        if (!strstr(line, needle))
            continue;
        count++;
        if (out && len) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, len, "%s", line);
        }
    }
    fclose(fp);
    return count;
}

long tu_nginx_log_count(const tu_nginx *n, const char *needle)
{
    return log_scan(n, needle, NULL, 0);
}

bool tu_nginx_log_last(const tu_nginx *n, const char *needle, char *out, size_t len)
{
    if (out && len)
        out[0] = '\0';
    return log_scan(n, needle, out, len) > 0;
}

void tu_nginx_stop(tu_nginx *n)
{
    if (!n)
        return;
    if (n->pid > 0) {
        int waited = 0;

        /* SIGTERM is nginx's fast shutdown: it does not wait for idle
         * keep-alive connections to finish. */
        kill(n->pid, SIGTERM);
        while (waitpid(n->pid, NULL, WNOHANG) == 0) {
            if (waited >= TN_STOP_MS) {
                kill(n->pid, SIGKILL);
                waitpid(n->pid, NULL, 0);
                break;
            }
            sleep_ms(5);
            waited += 5;
        }
    }
    if (n->dir[0] && !getenv("CBH_NGINX_KEEP"))
        nftw(n->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else if (n->dir[0])
        fprintf(stderr, "nginx: kept %s (CBH_NGINX_KEEP)\n", n->dir);
    free(n);
}
