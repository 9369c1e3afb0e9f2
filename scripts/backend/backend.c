/*
 * backend: the application server behind the proxies in bench-proxy.sh.
 *
 * One epoll loop, HTTP/1.1 with keep-alive, as cheap as an answer can be:
 *   GET /big     200 with a 1 MiB body (canned, written from one buffer)
 *   anything     200 with a 98-byte JSON body
 * A request body (Content-Length or chunked) is read and thrown away before
 * the answer, so an upload costs only its reads. "Connection: close" and
 * HTTP/1.0 without keep-alive close after the answer. Requests that arrive
 * pipelined are answered in order, one at a time. It checks little else: it
 * is a stand-in for a fast application, not a server to expose.
 *
 * It counts what a proxy in front of it makes it do: on SIGUSR1 it prints
 *   accepts N requests N body_bytes N
 * to standard output, so a script can tell a proxy that reuses its upstream
 * connections from one that opens one per request.
 *
 * Usage: backend PORT         (listens on 127.0.0.1:PORT)
 * Build: gcc -O2 -o backend backend.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define IN_CAP 65536
#define BIG_BYTES (1024 * 1024)

/* 98 bytes, as in the measurements. */
static const char json[] =
    "{\"id\":421,\"title\":\"feed the cat\",\"done\":false,\"owner\":\"margay\","
    "\"tags\":[\"home\",\"pets\"],\"due\":null}\n";

enum body { NO_BODY, LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_CRLF, TRAILER };

struct conn {
    int fd;
    char in[IN_CAP];
    size_t in_len;
    /* The request whose body is being read (or which is being answered). */
    enum body body;
    unsigned long long left;  /* body bytes still to come (LENGTH, CHUNK_DATA) */
    int big, close_after;
    /* The answer being written: a canned buffer, from off on. */
    const char *out;
    size_t out_len, out_off;
    int want_write;
};

_Static_assert(sizeof json - 1 == 98, "the JSON body is 98 bytes");

/* Each answer twice: kept alive, and with "Connection: close" for a client that asked. */
static char small_response[2][512], *big_response[2];
static size_t small_len[2], big_len[2];
static int epfd;
static unsigned long long accepts, requests, body_bytes;
static volatile sig_atomic_t report_wanted;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void on_usr1(int sig) {
    (void)sig;
    report_wanted = 1;
}

static void build_responses(void) {
    for (int close = 0; close < 2; close++) {
        const char *connection = close ? "Connection: close\r\n" : "";
        small_len[close] = (size_t)snprintf(
            small_response[close], sizeof small_response[close],
            "HTTP/1.1 200 OK\r\nServer: backend\r\n%sContent-Type: application/json\r\n"
            "Content-Length: %zu\r\n\r\n%s",
            connection, sizeof json - 1, json);
        char head[256];
        int head_len = snprintf(head, sizeof head,
                                "HTTP/1.1 200 OK\r\nServer: backend\r\n%s"
                                "Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n",
                                connection, BIG_BYTES);
        big_len[close] = (size_t)head_len + BIG_BYTES;
        big_response[close] = malloc(big_len[close]);
        if (!big_response[close]) die("malloc");
        memcpy(big_response[close], head, (size_t)head_len);
        for (size_t i = 0; i < BIG_BYTES; i++) big_response[close][head_len + i] = (char)('a' + i % 26);
    }
}

static void close_conn(struct conn *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c);
}

/* Writability while an answer waits, readability otherwise: no request is read before the
 * answer to the one before is out. */
static int set_write_interest(struct conn *c, int want) {
    if (want == c->want_write) return 0;
    struct epoll_event ev = {.events = want ? EPOLLOUT : EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) return -1;
    c->want_write = want;
    return 0;
}

/* A header field's value, case-insensitively, within head[0..len); NULL if absent. */
static const char *field(const char *head, size_t len, const char *name, size_t *value_len) {
    size_t n = strlen(name);
    for (const char *p = head; p + n + 3 < head + len; p++) {
        if (p[0] != '\n' || strncasecmp(p + 1, name, n) != 0 || p[1 + n] != ':') continue;
        const char *v = p + 2 + n;
        while (*v == ' ' || *v == '\t') v++;
        const char *end = memchr(v, '\r', (size_t)(head + len - v));
        *value_len = end ? (size_t)(end - v) : 0;
        return v;
    }
    return NULL;
}

static int has_token(const char *v, size_t len, const char *token) {
    size_t n = strlen(token);
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(v + i, token, n) == 0) return 1;
    return 0;
}

/* Takes the head at the start of the input, if complete: 1 taken, 0 incomplete, -1 bad. */
static int take_head(struct conn *c) {
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (!end) return c->in_len == IN_CAP ? -1 : 0;
    size_t len = (size_t)(end - c->in) + 4;
    c->big = c->in_len > 8 && memcmp(c->in, "GET /big ", 9) == 0;
    int http10 = memmem(c->in, len, " HTTP/1.0\r\n", 11) != NULL;
    size_t vlen;
    const char *v = field(c->in, len, "Connection", &vlen);
    c->close_after = v ? has_token(v, vlen, "close") : 0;
    if (http10 && !(v && has_token(v, vlen, "keep-alive"))) c->close_after = 1;
    c->body = NO_BODY;
    if ((v = field(c->in, len, "Transfer-Encoding", &vlen)) && has_token(v, vlen, "chunked")) {
        c->body = CHUNK_SIZE;
    } else if ((v = field(c->in, len, "Content-Length", &vlen))) {
        c->left = strtoull(v, NULL, 10);
        if (c->left > 0) c->body = LENGTH;
    }
    memmove(c->in, c->in + len, c->in_len - len);
    c->in_len -= len;
    return 1;
}

/* Consumes body bytes from the input; 1 when the body is through, 0 for more, -1 bad. */
static int take_body(struct conn *c) {
    size_t pos = 0;
    while (c->body != NO_BODY && pos < c->in_len) {
        char *p = c->in + pos, *eol;
        size_t avail = c->in_len - pos;
        switch (c->body) {
        case LENGTH:
        case CHUNK_DATA: {
            size_t take = avail < c->left ? avail : (size_t)c->left;
            pos += take;
            c->left -= take;
            body_bytes += take;
            if (c->left == 0) c->body = c->body == LENGTH ? NO_BODY : CHUNK_CRLF;
            break;
        }
        case CHUNK_CRLF:
            if (avail < 2) goto more;
            pos += 2;
            c->body = CHUNK_SIZE;
            break;
        case CHUNK_SIZE:
            if (!(eol = memmem(p, avail, "\r\n", 2))) goto more;
            if (!isxdigit((unsigned char)*p)) return -1;
            c->left = strtoull(p, NULL, 16);
            pos += (size_t)(eol - p) + 2;
            c->body = c->left ? CHUNK_DATA : TRAILER;
            break;
        case TRAILER:
            if (!(eol = memmem(p, avail, "\r\n", 2))) goto more;
            pos += (size_t)(eol - p) + 2;
            if (eol == p) c->body = NO_BODY;
            break;
        case NO_BODY:
            break;
        }
    }
more:
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
    return c->body == NO_BODY;
}

/* Writes what the answer under way has left; -1 if the connection died. */
static int flush_out(struct conn *c) {
    while (c->out && c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return set_write_interest(c, 1);
        } else {
            return -1;
        }
    }
    if (c->out) {
        c->out = NULL;
        if (c->close_after) return -1;
    }
    return set_write_interest(c, 0);
}

/* Answers every request the input completes, one at a time; -1 to close. */
static int serve(struct conn *c) {
    for (;;) {
        if (c->out) return 0; /* the answer before is still being written */
        if (c->body == NO_BODY) {
            if (c->in_len == 0) return 0;
            int r = take_head(c);
            if (r <= 0) return r;
        }
        int r = take_body(c);
        if (r <= 0) return r;
        requests++;
        c->out = c->big ? big_response[c->close_after] : small_response[c->close_after];
        c->out_len = c->big ? big_len[c->close_after] : small_len[c->close_after];
        c->out_off = 0;
        if (flush_out(c) < 0) return -1;
    }
}

/* Reads until EAGAIN (or a full buffer), serving as it goes; -1 to close. */
static int read_in(struct conn *c) {
    for (;;) {
        if (c->in_len == IN_CAP) {
            if (serve(c) < 0) return -1;
            if (c->in_len == IN_CAP) return c->out ? 0 : -1;
        }
        ssize_t n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
        if (n > 0) {
            c->in_len += (size_t)n;
            if (serve(c) < 0) return -1;
            if (c->out) return 0; /* read on once the answer is out */
        } else if (n == 0) {
            return -1;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        } else {
            return -1;
        }
    }
}

static void accept_all(int listener) {
    for (;;) {
        int fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            return; /* EAGAIN, or out of descriptors: try again on the next event */
        }
        accepts++;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c) die("calloc");
        c->fd = fd;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) close_conn(c);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_usr1};
    sigaction(SIGUSR1, &sa, NULL);
    build_responses();

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(listener, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 4096) < 0) die("listen");

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) die("epoll_create1");
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &lev) < 0) die("epoll_ctl");

    struct epoll_event events[512];
    for (;;) {
        if (report_wanted) {
            report_wanted = 0;
            printf("accepts %llu requests %llu body_bytes %llu\n", accepts, requests, body_bytes);
            fflush(stdout);
        }
        int n = epoll_wait(epfd, events, 512, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            die("epoll_wait");
        }
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (!c) {
                accept_all(listener);
                continue;
            }
            int dead = 0;
            if (events[i].events & EPOLLOUT) dead = flush_out(c) < 0 || serve(c) < 0;
            if (!dead && (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) dead = read_in(c) < 0;
            if (dead) close_conn(c);
        }
    }
}
