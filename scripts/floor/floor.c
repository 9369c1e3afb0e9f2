/*
 * floor: the cost floor for serving a small file over HTTP/1.1 on one core.
 *
 * A minimal epoll loop that parses nothing: for every "\r\n\r\n" that arrives
 * on a connection it queues one canned 200 response carrying the bytes of one
 * file, read once at start. Keep-alive always; it honours nothing else (no
 * methods, paths, Connection: close, timeouts or limits). No real server can
 * be cheaper per request, so a server's CPU time per request divided by this
 * one's says how much its HTTP work costs on top of the kernel's.
 *
 * Usage: floor PORT FILE      (listens on 127.0.0.1:PORT)
 * Build: gcc -O2 -o floor floor.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

struct conn {
    int fd;
    int matched;      /* how much of "\r\n\r\n" the bytes so far end with */
    char *out;        /* responses not yet written */
    size_t out_len, out_off, out_cap;
    int want_write;   /* EPOLLOUT registered */
};

static char *response;
static size_t response_len;
static int epfd;

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void load_response(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) die(path);
    struct stat st;
    if (fstat(fd, &st) < 0) die("fstat");
    char head[256];
    int head_len = snprintf(head, sizeof head,
                            "HTTP/1.1 200 OK\r\nServer: floor\r\n"
                            "Content-Type: text/html\r\nContent-Length: %lld\r\n\r\n",
                            (long long)st.st_size);
    response_len = (size_t)head_len + (size_t)st.st_size;
    response = malloc(response_len);
    if (!response) die("malloc");
    memcpy(response, head, (size_t)head_len);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, response + head_len + got, (size_t)st.st_size - got);
        if (n <= 0) die("read file");
        got += (size_t)n;
    }
    close(fd);
}

static void close_conn(struct conn *c) {
    close(c->fd); /* also removes it from the epoll set */
    free(c->out);
    free(c);
}

static void queue_response(struct conn *c) {
    if (c->out_len + response_len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : response_len;
        while (cap < c->out_len + response_len) cap *= 2;
        char *out = realloc(c->out, cap);
        if (!out) die("realloc");
        c->out = out;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, response, response_len);
    c->out_len += response_len;
}

/* Writes what is queued; returns -1 if the connection died. */
static int flush_out(struct conn *c) {
    while (c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            return -1;
        }
    }
    if (c->out_off == c->out_len) {
        /* Drained: give the buffer back, so an idle connection holds only
         * its struct conn (the floor for memory per idle connection too). */
        free(c->out);
        c->out = NULL;
        c->out_off = c->out_len = c->out_cap = 0;
    }
    int want_write = c->out_len > 0;
    if (want_write != c->want_write) {
        struct epoll_event ev = {.events = EPOLLIN | (want_write ? EPOLLOUT : 0), .data.ptr = c};
        if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) < 0) return -1;
        c->want_write = want_write;
    }
    return 0;
}

/* Reads until EAGAIN, queueing a response per end of head; -1 if it ended. */
static int read_in(struct conn *c) {
    static const char end[] = "\r\n\r\n";
    char buf[16384];
    for (;;) {
        ssize_t n = read(c->fd, buf, sizeof buf);
        if (n > 0) {
            for (ssize_t i = 0; i < n; i++) {
                if (buf[i] == end[c->matched]) {
                    if (++c->matched == 4) {
                        queue_response(c);
                        c->matched = 0;
                    }
                } else {
                    c->matched = buf[i] == '\r' ? 1 : 0;
                }
            }
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
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT FILE\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    load_response(argv[2]);

    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (listener < 0) die("socket");
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
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
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) dead = read_in(c) < 0;
            if (!dead) dead = flush_out(c) < 0;
            if (dead) close_conn(c);
        }
    }
}
