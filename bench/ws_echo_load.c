/* ws_echo_load: the websocket echo load of `make bench`'s ws phase, in C so that the
 * client costs little of the two cores it shares with the server (websockets' asyncio
 * client, bench/ws_load.py, spends about 60 us of CPU per echoed message, more than the
 * servers do; this one about 19 us, nearly all of it the kernel's TCP).
 *
 *     ws_echo_load PORT CONNS SECONDS [SIZE]   -> {"msgs": N, "seconds": S}
 *
 * CONNS websockets to ws://127.0.0.1:PORT/echo (no extension offered), each sending a
 * text message of SIZE bytes (default 1024, 'x'), waiting for the echo, sending again,
 * until SECONDS have passed; the round under way at the end completes and counts, as in
 * ws_load.py.  Frames are masked (RFC 6455 5.3; one key for every frame, which the RFC
 * asks of browsers, not of a load generator); a ping is answered with a pong; each
 * socket ends with a close frame (1000).  One thread, epoll.  127.0.0.1 only, bounded in
 * time.  Exits 1 with a message on stderr on any protocol or socket error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_HEAD 4096
#define MASK_KEY "\x37\xfa\x21\x3d"

typedef struct {
    int fd;
    unsigned char *in;     /* bytes read, not yet parsed */
    size_t in_len;
    size_t out_off;        /* bytes of the current outgoing frame written */
    int sending;           /* a frame is being written */
    int done;              /* stopped: no more messages */
} conn_t;

static unsigned char *frame;   /* the masked text frame every connection sends */
static size_t frame_len;
static size_t in_cap;

static void
die(const char *what)
{
    fprintf(stderr, "ws_echo_load: %s: %s\n", what, errno ? strerror(errno) : "protocol");
    exit(1);
}

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A masked frame of opcode `op` with `payload`. */
static unsigned char *
make_frame(int op, const unsigned char *payload, size_t n, size_t *len)
{
    unsigned char *f = malloc(n + 14);
    size_t h = 0;
    if (f == NULL) {
        die("malloc");
    }
    f[h++] = 0x80 | op;
    if (n < 126) {
        f[h++] = 0x80 | n;
    } else if (n < 65536) {
        f[h++] = 0x80 | 126;
        f[h++] = n >> 8;
        f[h++] = n & 0xff;
    } else {
        f[h++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--) {
            f[h++] = ((uint64_t)n >> (8 * i)) & 0xff;
        }
    }
    memcpy(f + h, MASK_KEY, 4);
    h += 4;
    for (size_t i = 0; i < n; i++) {
        f[h + i] = payload[i] ^ (unsigned char)MASK_KEY[i % 4];
    }
    *len = h + n;
    return f;
}

/* Blocking write of all of buf (the handshake, pongs, the close). */
static void
write_all(int fd, const unsigned char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EAGAIN) {
            continue;
        }
        if (w <= 0) {
            die("write");
        }
        buf += w;
        n -= (size_t)w;
    }
}

/* Connects and completes the opening handshake (blocking); bytes after the 101's head
 * stay in c->in. */
static void
open_ws(conn_t *c, int port)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        die("connect");
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char req[256];
    int n = snprintf(req, sizeof(req),
                     "GET /echo HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n", port);
    write_all(c->fd, (unsigned char *)req, (size_t)n);
    c->in = malloc(in_cap);
    if (c->in == NULL) {
        die("malloc");
    }
    for (;;) {
        ssize_t r = read(c->fd, c->in + c->in_len, MAX_HEAD - c->in_len);
        if (r <= 0) {
            die("handshake read");
        }
        c->in_len += (size_t)r;
        unsigned char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (end != NULL) {
            if (c->in_len < 12 || memcmp(c->in, "HTTP/1.1 101", 12) != 0) {
                errno = 0;
                die("handshake: not 101");
            }
            size_t head = (size_t)(end + 4 - c->in);
            memmove(c->in, c->in + head, c->in_len - head);
            c->in_len -= head;
            fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
            return;
        }
        if (c->in_len == MAX_HEAD) {
            errno = 0;
            die("handshake: head too long");
        }
    }
}

/* Writes what it can of the current frame; 0 when all of it is out. */
static int
flush(conn_t *c)
{
    while (c->out_off < frame_len) {
        ssize_t w = write(c->fd, frame + c->out_off, frame_len - c->out_off);
        if (w < 0 && errno == EAGAIN) {
            return 1;
        }
        if (w < 0) {
            die("write");
        }
        c->out_off += (size_t)w;
    }
    c->sending = 0;
    return 0;
}

static void
send_next(conn_t *c, int epfd)
{
    c->out_off = 0;
    c->sending = 1;
    if (flush(c)) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

/* Parses the complete frames in c->in; returns the data messages among them. */
static long
parse(conn_t *c)
{
    long msgs = 0;
    size_t off = 0;
    for (;;) {
        unsigned char *p = c->in + off;
        size_t avail = c->in_len - off;
        if (avail < 2) {
            break;
        }
        size_t h = 2, n = p[1] & 0x7f;
        if (p[1] & 0x80) {
            errno = 0;
            die("a masked frame from the server");
        }
        if (n == 126) {
            if (avail < 4) {
                break;
            }
            n = ((size_t)p[2] << 8) | p[3];
            h = 4;
        } else if (n == 127) {
            if (avail < 10) {
                break;
            }
            n = 0;
            for (int i = 0; i < 8; i++) {
                n = (n << 8) | p[2 + i];
            }
            h = 10;
        }
        if (h + n > in_cap) {
            errno = 0;
            die("a frame larger than the echo");
        }
        if (avail < h + n) {
            break;
        }
        int op = p[0] & 0x0f;
        if (op == 0x9) {
            size_t len;
            unsigned char *pong = make_frame(0xA, p + h, n, &len);
            write_all(c->fd, pong, len);
            free(pong);
        } else if (op == 0x8) {
            errno = 0;
            die("the server closed");
        } else if (op != 0xA && (p[0] & 0x80)) {
            msgs++;
        }
        off += h + n;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return msgs;
}

int
main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ws_echo_load PORT CONNS SECONDS [SIZE]\n");
        return 2;
    }
    int port = atoi(argv[1]), conns = atoi(argv[2]);
    double seconds = atof(argv[3]);
    size_t size = argc > 4 ? (size_t)atol(argv[4]) : 1024;
    if (port <= 0 || conns <= 0 || seconds <= 0) {
        fprintf(stderr, "ws_echo_load: bad arguments\n");
        return 2;
    }
    unsigned char *text = malloc(size);
    if (text == NULL) {
        die("malloc");
    }
    memset(text, 'x', size);
    frame = make_frame(0x1, text, size, &frame_len);
    in_cap = size + 14 + MAX_HEAD;

    conn_t *cs = calloc((size_t)conns, sizeof(conn_t));
    int epfd = epoll_create1(0);
    if (cs == NULL || epfd < 0) {
        die("setup");
    }
    for (int i = 0; i < conns; i++) {
        open_ws(&cs[i], port);
    }
    double t0 = now_s(), stop = t0 + seconds;
    long msgs = 0;
    int live = conns;
    for (int i = 0; i < conns; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &cs[i]};
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, cs[i].fd, &ev) < 0) {
            die("epoll_ctl");
        }
        send_next(&cs[i], epfd);
    }
    struct epoll_event evs[256];
    while (live > 0) {
        int n = epoll_wait(epfd, evs, 256, 1000);
        if (n < 0 && errno != EINTR) {
            die("epoll_wait");
        }
        if (now_s() > stop + 30) {
            errno = 0;
            die("no echo for 30 s after the end");
        }
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if ((evs[i].events & EPOLLOUT) && c->sending && !flush(c)) {
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
            }
            if (!(evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                continue;
            }
            ssize_t r = read(c->fd, c->in + c->in_len, in_cap - c->in_len);
            if (r == 0) {
                errno = 0;
                die("the server closed the socket");
            }
            if (r < 0) {
                if (errno == EAGAIN) {
                    continue;
                }
                die("read");
            }
            c->in_len += (size_t)r;
            long got = parse(c);
            msgs += got;
            if (got > 0 && !c->done) {
                if (now_s() < stop) {
                    send_next(c, epfd);
                } else {
                    c->done = 1;
                    live--;
                }
            }
        }
    }
    double elapsed = now_s() - t0;
    size_t close_len;
    unsigned char code[2] = {0x03, 0xe8};
    unsigned char *close_frame = make_frame(0x8, code, 2, &close_len);
    for (int i = 0; i < conns; i++) {
        write_all(cs[i].fd, close_frame, close_len);
        close(cs[i].fd);
    }
    printf("{\"msgs\": %ld, \"seconds\": %.6f}\n", msgs, elapsed);
    return 0;
}
