/* http_canned — the canned-answer HTTP server of http_canned.h. One thread
 * accepts and answers one connection at a time; the answer is guarded by a
 * mutex so the test can change it between requests. */
#include "tests/support/http_canned.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct tu_canned {
    int fd;
    int port;
    pthread_t th;
    pthread_mutex_t mu;
    bool stop;
    int status;
    char *body;
    size_t len;
    unsigned served;
};

/* Reads a request head (up to the blank line, capped) and drops it. */
static void read_head(int fd)
{
    char req[8192];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof req - 1 && (r = read(fd, req + got, sizeof req - 1 - got)) > 0) {
        got += (size_t)r;
        req[got] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
}

static void *canned_loop(void *arg)
{
    struct tu_canned *c = arg;
    for (;;) {
        int fd = accept(c->fd, NULL, NULL);
        pthread_mutex_lock(&c->mu);
        bool stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        if (stop) {
            if (fd >= 0)
                close(fd);
            return NULL;
        }
        if (fd < 0)
            continue;
        read_head(fd);
        pthread_mutex_lock(&c->mu);
        char head[160];
        int hl = snprintf(head, sizeof head,
                          "HTTP/1.1 %d Canned\r\nContent-Type: application/json\r\n"
                          "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                          c->status, c->len);
        if (write(fd, head, (size_t)hl) == hl && c->len > 0 && write(fd, c->body, c->len) < 0)
            perror("http_canned: write");
        c->served++;
        pthread_mutex_unlock(&c->mu);
        close(fd);
    }
}

struct tu_canned *tu_canned_start(void)
{
    struct tu_canned *c = calloc(1, sizeof *c);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    c->status = 200;
    pthread_mutex_init(&c->mu, NULL);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(c->fd, 16) < 0 ||
        getsockname(c->fd, (struct sockaddr *)&a, &al) < 0 ||
        pthread_create(&c->th, NULL, canned_loop, c) != 0) {
        if (c->fd >= 0)
            close(c->fd);
        pthread_mutex_destroy(&c->mu);
        free(c);
        return NULL;
    }
    c->port = ntohs(a.sin_port);
    return c;
}

void tu_canned_url(const struct tu_canned *c, const char *path, char *out, size_t n)
{
    snprintf(out, n, "http://127.0.0.1:%d%s", c->port, path);
}

void tu_canned_set(struct tu_canned *c, int status, const void *body, size_t len)
{
    char *copy = malloc(len + 1);
    if (len > 0)
        memcpy(copy, body, len);
    pthread_mutex_lock(&c->mu);
    free(c->body);
    c->status = status;
    c->body = copy;
    c->len = len;
    c->served = 0;
    pthread_mutex_unlock(&c->mu);
}

unsigned tu_canned_served(struct tu_canned *c)
{
    pthread_mutex_lock(&c->mu);
    unsigned n = c->served;
    pthread_mutex_unlock(&c->mu);
    return n;
}

void tu_canned_stop(struct tu_canned *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = true;
    pthread_mutex_unlock(&c->mu);
    shutdown(c->fd, SHUT_RDWR); /* wakes the accept */
    pthread_join(c->th, NULL);
    close(c->fd);
    pthread_mutex_destroy(&c->mu);
    free(c->body);
    free(c);
}
