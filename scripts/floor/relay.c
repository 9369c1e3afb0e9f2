/*
 * relay: the cost floor for a reverse proxy on one core.
 *
 * A minimal epoll loop that understands nothing of HTTP: each accepted client
 * gets its own upstream connection, opened at accept, and whatever arrives on
 * one side is passed to the other with one recv and one send. No parsing, no
 * header rewriting, no pool, no timeouts, no limits. Made for small messages
 * (requests and answers that fit a socket buffer): a send that cannot take a
 * whole message closes the pair. A proxy has to do at least these system calls
 * per request, so its CPU time per request divided by this one's says what its
 * HTTP work costs on top of the kernel's.
 *
 * Usage: relay PORT UPSTREAM_PORT     (both on 127.0.0.1)
 * Build: gcc -O2 -o relay relay.c
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
#include <unistd.h>

#define MAX_FD 65536

static int peer[MAX_FD]; /* the other side of each open socket, -1 if none */
static char buf[65536];

static void die(const char *what) {
    perror(what);
    exit(1);
}

static struct sockaddr_in loopback(int port) {
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

static void close_pair(int fd) {
    int other = peer[fd];
    peer[fd] = -1;
    close(fd); /* also removes it from the epoll set */
    if (other >= 0) {
        peer[other] = -1;
        close(other);
    }
}

static void watch(int ep, int fd) {
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
}

static void accept_all(int ep, int listener, const struct sockaddr_in *up) {
    int one = 1;
    for (;;) {
        int c = accept4(listener, NULL, NULL, SOCK_NONBLOCK);
        if (c < 0) return;
        /* The upstream connect blocks: the floor measures kept-alive traffic. */
        int u = socket(AF_INET, SOCK_STREAM, 0);
        if (c >= MAX_FD || u < 0 || u >= MAX_FD || connect(u, (const void *)up, sizeof *up) < 0) {
            perror("upstream");
            close(c);
            if (u >= 0) close(u);
            continue;
        }
        if (fcntl(u, F_SETFL, O_NONBLOCK) < 0) die("fcntl");
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        peer[c] = u;
        peer[u] = c;
        watch(ep, c);
        watch(ep, u);
    }
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: relay PORT UPSTREAM_PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    memset(peer, -1, sizeof peer);
    struct sockaddr_in addr = loopback(atoi(argv[1])), up = loopback(atoi(argv[2]));
    int one = 1;
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (listener < 0) die("socket");
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(listener, (void *)&addr, sizeof addr) < 0) die("bind");
    if (listen(listener, 4096) < 0) die("listen");
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    watch(ep, listener);
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == listener) {
                accept_all(ep, listener, &up);
                continue;
            }
            if (peer[fd] < 0) continue; /* closed earlier in this batch */
            ssize_t got = recv(fd, buf, sizeof buf, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            if (got <= 0 || send(peer[fd], buf, (size_t)got, 0) != got) close_pair(fd);
        }
    }
}
