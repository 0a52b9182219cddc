/* HTTP-date parsing and formatting without timegm(), strptime() or the
 * locale: those are not thread-safe everywhere, depend on the environment
 * (TZ, LC_TIME) and timegm is not standard C. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "httpdate.h"

static const char *const httpdate_wkday[7] = { "Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat" };
static const char *const httpdate_weekday[7] = { "Sunday",   "Monday", "Tuesday", "Wednesday",
                                                 "Thursday", "Friday", "Saturday" };
static const char *const httpdate_month[12] = { "Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                "Jul", "Aug", "Sep", "Oct", "Nov", "Dec" };

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
 * days_from_civil), exact for any year an int64 can hold here. */
static int64_t httpdate_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t  era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void httpdate_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    int64_t  era;
    unsigned doe, yoe, doy, mp;

    z += 719468;
    era = (z >= 0 ? z : z - 146096) / 146097;
    doe = (unsigned)(z - era * 146097);
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static bool httpdate_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static unsigned httpdate_mdays(int64_t y, unsigned m)
{
    static const unsigned days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

    return m == 2 && httpdate_leap(y) ? 29 : days[m - 1];
}

/* Reads exactly n digits. */
static bool httpdate_digits(const char **s, unsigned n, unsigned *out)
{
    unsigned v = 0;

    while (n--) {
        if (**s < '0' || **s > '9')
            return false;
        v = v * 10 + (unsigned)(**s - '0');
        (*s)++;
    }
    *out = v;
    return true;
}

static bool httpdate_lit(const char **s, const char *lit)
{
    size_t n = strlen(lit);

    if (strncasecmp(*s, lit, n) != 0)
        return false;
    *s += n;
    return true;
}

/* Matches one of names (case-insensitive); the index goes to *idx. */
static bool httpdate_name(const char **s, const char *const *names, unsigned count, unsigned *idx)
{
    unsigned i;

    for (i = 0; i < count; i++) {
        if (httpdate_lit(s, names[i])) {
            *idx = i;
            return true;
        }
    }
    return false;
}

/* "HH:MM:SS"; 60 seconds is a leap second, which RFC 9110 allows. */
static bool httpdate_time(const char **s, unsigned *h, unsigned *mi, unsigned *sec)
{
    return httpdate_digits(s, 2, h) && httpdate_lit(s, ":") && httpdate_digits(s, 2, mi) &&
           httpdate_lit(s, ":") && httpdate_digits(s, 2, sec) && *h <= 23 && *mi <= 59 &&
           *sec <= 60;
}

/* mon is 1..12: the callers pass a month name's index + 1. */
static bool httpdate_epoch(int64_t y, unsigned mon, unsigned d, unsigned h, unsigned mi,
                           unsigned sec, int64_t *epoch)
{
    if (d < 1 || d > httpdate_mdays(y, mon))
        return false;
    /* POSIX time has no leap seconds: read :60 as :59. Counting it as the
     * next second would take 9999-12-31 23:59:60 past the last date an
     * HTTP-date can write (the fuzzer found that). */
    if (sec == 60)
        sec = 59;
    *epoch =
        httpdate_days_from_civil(y, mon, d) * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec;
    return true;
}

/* IMF-fixdate after the day name: ", 06 Nov 1994 08:49:37 GMT". */
static bool httpdate_imf(const char *s, int64_t *epoch)
{
    unsigned d, mon, y, h, mi, sec;

    if (!httpdate_lit(&s, ", ") || !httpdate_digits(&s, 2, &d) || !httpdate_lit(&s, " ") ||
        !httpdate_name(&s, httpdate_month, 12, &mon) || !httpdate_lit(&s, " ") ||
        !httpdate_digits(&s, 4, &y) || !httpdate_lit(&s, " ") ||
        !httpdate_time(&s, &h, &mi, &sec) || !httpdate_lit(&s, " GMT") || *s)
        return false;
    return httpdate_epoch(y, mon + 1, d, h, mi, sec, epoch);
}

/* RFC 850 after the day name: ", 06-Nov-94 08:49:37 GMT". */
static bool httpdate_rfc850(const char *s, int64_t *epoch)
{
    unsigned d, mon, y, h, mi, sec;

    if (!httpdate_lit(&s, ", ") || !httpdate_digits(&s, 2, &d) || !httpdate_lit(&s, "-") ||
        !httpdate_name(&s, httpdate_month, 12, &mon) || !httpdate_lit(&s, "-") ||
        !httpdate_digits(&s, 2, &y) || !httpdate_lit(&s, " ") ||
        !httpdate_time(&s, &h, &mi, &sec) || !httpdate_lit(&s, " GMT") || *s)
        return false;
    /* Two-digit years: 00-69 are 20xx, 70-99 are 19xx (RFC 9110 5.6.7 asks
     * for "not more than 50 years ahead", which this matches until 2020+50). */
    y += y < 70 ? 2000 : 1900;
    return httpdate_epoch(y, mon + 1, d, h, mi, sec, epoch);
}

/* asctime after the day name: " Nov  6 08:49:37 1994". */
static bool httpdate_asctime(const char *s, int64_t *epoch)
{
    unsigned d, mon, y, h, mi, sec;

    if (!httpdate_lit(&s, " ") || !httpdate_name(&s, httpdate_month, 12, &mon) ||
        !httpdate_lit(&s, " "))
        return false;
    if (*s == ' ') {
        s++;
        if (!httpdate_digits(&s, 1, &d))
            return false;
    } else if (!httpdate_digits(&s, 2, &d)) {
        return false;
    }
    if (!httpdate_lit(&s, " ") || !httpdate_time(&s, &h, &mi, &sec) || !httpdate_lit(&s, " ") ||
        !httpdate_digits(&s, 4, &y) || *s)
        return false;
    return httpdate_epoch(y, mon + 1, d, h, mi, sec, epoch);
}

bool cbh_http_date_parse(const char *s, int64_t *epoch)
{
    char        buf[64];
    size_t      n;
    unsigned    idx;
    const char *p;
    int64_t     e;

    if (!s || !epoch)
        return false;
    /* Surrounding whitespace is tolerated; the date itself is strict. */
    while (*s == ' ' || *s == '\t')
        s++;
    n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    /* Full day names first: "Sun" is a prefix of "Sunday". */
    p = buf;
    if (httpdate_name(&p, httpdate_weekday, 7, &idx)) {
        if (!httpdate_rfc850(p, &e))
            return false;
    } else {
        p = buf;
        if (!httpdate_name(&p, httpdate_wkday, 7, &idx))
            return false;
        if (*p == ',' ? !httpdate_imf(p, &e) : !httpdate_asctime(p, &e))
            return false;
    }
    *epoch = e;
    return true;
}

void cbh_http_date_format(int64_t epoch, char *buf, size_t size)
{
    int64_t  days, y, secs;
    unsigned m, d, wd;

    /* snprintf writes nothing for size 0. */
    if (!buf)
        return;
    /* Four-digit years only: 0000-01-01 .. 9999-12-31. */
    if (epoch < -62167219200LL)
        epoch = -62167219200LL;
    if (epoch > 253402300799LL)
        epoch = 253402300799LL;
    days = epoch >= 0 ? epoch / 86400 : -((-epoch + 86399) / 86400);
    secs = epoch - days * 86400;
    httpdate_civil_from_days(days, &y, &m, &d);
    /* 1970-01-01 was a Thursday. */
    wd = (unsigned)(((days % 7) + 7 + 4) % 7);
    snprintf(buf, size, "%s, %02u %s %04lld %02u:%02u:%02u GMT", httpdate_wkday[wd], d,
             httpdate_month[m - 1], (long long)y, (unsigned)(secs / 3600),
             (unsigned)(secs % 3600 / 60), (unsigned)(secs % 60));
}
