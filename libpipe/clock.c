/* clock — time sources and UTC calendar arithmetic without the C library's
 * time zone state (timegm/gmtime_r are avoided on the hot path). */
#include "libpipe/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "libpipe/err.h"

int64_t pipe_clock_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t pipe_clock_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pipe_clock_mono_deadline(int64_t ms, struct timespec *out)
{
    clock_gettime(CLOCK_MONOTONIC, out);
    int64_t ns = (int64_t)out->tv_nsec + (ms % 1000) * 1000000;
    out->tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
    out->tv_nsec = (long)(ns % 1000000000);
}

int64_t pipe_clock_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, int *m, int *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned dd = doy - (153 * mp + 2) / 5 + 1;
    unsigned mm = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (mm <= 2));
    *m = (int)mm;
    *d = (int)dd;
}

int64_t pipe_clock_from_civil(int y, int mon, int d, int h, int mi, int s, int msec)
{
    int64_t days = days_from_civil(y, (unsigned)mon, (unsigned)d);
    return ((days * 24 + h) * 60 + mi) * PIPE_MIN_MS + (int64_t)s * PIPE_SEC_MS + msec;
}

static void split(int64_t ms, int *y, int *mo, int *d, int *h, int *mi, int *s, int *msec)
{
    int64_t days = ms >= 0 ? ms / PIPE_DAY_MS : -((-ms + PIPE_DAY_MS - 1) / PIPE_DAY_MS);
    int64_t rem = ms - days * PIPE_DAY_MS;
    civil_from_days(days, y, mo, d);
    *h = (int)(rem / PIPE_HOUR_MS);
    *mi = (int)(rem / PIPE_MIN_MS % 60);
    *s = (int)(rem / PIPE_SEC_MS % 60);
    *msec = (int)(rem % 1000);
}

size_t pipe_clock_format_rfc3339(int64_t ms, char *out)
{
    int y, mo, d, h, mi, s, msec;
    split(ms, &y, &mo, &d, &h, &mi, &s, &msec);
    if (y < 0 || y > 9999)
        y = y < 0 ? 0 : 9999;
    /* Digits by hand, not snprintf: the filter formats a time per event. */
    static const char tmpl[] = "0000-00-00T00:00:00.000Z";
    const struct {
        int v, at, n;
    } f[] = {{y, 0, 4}, {mo, 5, 2}, {d, 8, 2}, {h, 11, 2}, {mi, 14, 2}, {s, 17, 2}, {msec, 20, 3}};
    memcpy(out, tmpl, sizeof tmpl);
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        for (int k = f[i].n - 1, v = f[i].v; k >= 0; k--, v /= 10)
            out[f[i].at + k] = (char)('0' + v % 10);
    return PIPE_CLOCK_RFC3339_LEN;
}

void pipe_clock_partition(int64_t ms, char *dt, char *hr)
{
    int y, mo, d, h, mi, s, msec;
    split(ms, &y, &mo, &d, &h, &mi, &s, &msec);
    if (y < 0 || y > 9999)
        y = y < 0 ? 0 : 9999;
    char tmp[32];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02d", y, mo, d);
    memcpy(dt, tmp, 11);
    snprintf(tmp, sizeof tmp, "%02d", h);
    memcpy(hr, tmp, 3);
}

static int digits(const char *s, size_t n, size_t at, size_t count, int *out)
{
    int v = 0;
    if (at + count > n)
        return -1;
    for (size_t i = at; i < at + count; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return dim[m - 1];
}

int pipe_clock_parse_rfc3339(const char *s, size_t n, int64_t *ms)
{
    int y, mo, d, h, mi, sec, msec = 0;
    if (digits(s, n, 0, 4, &y) || n < 19 || s[4] != '-' || digits(s, n, 5, 2, &mo) || s[7] != '-' ||
        digits(s, n, 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s, n, 11, 2, &h) || s[13] != ':' || digits(s, n, 14, 2, &mi) || s[16] != ':' ||
        digits(s, n, 17, 2, &sec))
        return PIPE_EINVAL;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 60)
        return PIPE_EINVAL;
    if (sec == 60)
        sec = 59; /* a leap second folds into the second before it */
    size_t i = 19;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        int scale = 100;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            msec += (s[i] - '0') * scale;
            scale /= 10;
            i++;
        }
        if (i == start || i - start > 9)
            return PIPE_EINVAL;
    }
    int offset_min = 0;
    if (i < n && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om;
        if (digits(s, n, i + 1, 2, &oh) || i + 3 >= n || s[i + 3] != ':' ||
            digits(s, n, i + 4, 2, &om) || oh > 23 || om > 59)
            return PIPE_EINVAL;
        offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
        i += 6;
    } else {
        return PIPE_EINVAL;
    }
    if (i != n)
        return PIPE_EINVAL;
    *ms = pipe_clock_from_civil(y, mo, d, h, mi, sec, msec) - offset_min * PIPE_MIN_MS;
    return PIPE_OK;
}

int pipe_clock_parse_time(const char *s, int64_t now_ms, int64_t *ms)
{
    size_t n = strlen(s);
    int y, mo, d, h;
    char *end;
    if (strcmp(s, "now") == 0) {
        *ms = now_ms;
        return PIPE_OK;
    }
    if (s[0] == '-' && n >= 3) {
        long long v = strtoll(s + 1, &end, 10);
        int64_t unit = *end == 's'   ? PIPE_SEC_MS
                       : *end == 'm' ? PIPE_MIN_MS
                       : *end == 'h' ? PIPE_HOUR_MS
                       : *end == 'd' ? PIPE_DAY_MS
                                     : 0;
        if (v < 0 || end == s + 1 || unit == 0 || end[1] != '\0')
            return PIPE_EINVAL;
        *ms = now_ms - v * unit;
        return PIPE_OK;
    }
    if (n == 10 && !digits(s, n, 0, 4, &y) && s[4] == '-' && !digits(s, n, 5, 2, &mo) &&
        s[7] == '-' && !digits(s, n, 8, 2, &d) && mo >= 1 && mo <= 12 && d >= 1 &&
        d <= days_in_month(y, mo)) {
        *ms = pipe_clock_from_civil(y, mo, d, 0, 0, 0, 0);
        return PIPE_OK;
    }
    if (n == 13 && !digits(s, n, 0, 4, &y) && s[4] == '-' && !digits(s, n, 5, 2, &mo) &&
        s[7] == '-' && !digits(s, n, 8, 2, &d) && s[10] == 'T' && !digits(s, n, 11, 2, &h) &&
        mo >= 1 && mo <= 12 && d >= 1 && d <= days_in_month(y, mo) && h < 24) {
        *ms = pipe_clock_from_civil(y, mo, d, h, 0, 0, 0);
        return PIPE_OK;
    }
    if (n > 0 && n <= 15 && s[0] >= '0' && s[0] <= '9') {
        long long v = strtoll(s, &end, 10);
        if (*end == '\0') {
            *ms = v;
            return PIPE_OK;
        }
    }
    return pipe_clock_parse_rfc3339(s, n, ms);
}

int64_t pipe_clock_hour_floor(int64_t ms)
{
    return ms - (ms % PIPE_HOUR_MS + PIPE_HOUR_MS) % PIPE_HOUR_MS;
}
