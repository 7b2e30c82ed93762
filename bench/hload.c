/* hload: a small closed-loop HTTP/1.1 load generator for the benchmark, for HEAD requests.
 *
 * wrk 4.1 cannot measure HEAD: its response parser waits for the Content-Length bytes a HEAD
 * response never carries (wg/wrk#198). hload does what wrk does for this case and no more:
 * T threads, C keep-alive connections in all, one request in flight per connection, a fixed
 * duration, every latency recorded. It prints one JSON object:
 *
 *   {"requests": N, "seconds": S, "rps": R, "p50_ms": ..., "p99_ms": ..., "max_ms": ...,
 *    "non2xx": N, "errors": N}
 *
 * Usage: hload -c CONNECTIONS -t THREADS -d SECONDS [-m METHOD] [-H "Name: value"]... URL
 * URL is http://HOST:PORT/PATH with a numeric IPv4 host (the benchmark uses 127.0.0.1).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HEAD_MAX 16384
#define MAX_HEADERS 32

typedef struct {
    int fd;
    int writing;
    size_t sent;
    char head[HEAD_MAX + 1];
    size_t head_len;
    int in_body;
    long long body_need;
    long long body_got;
    int status;
    double started;
} conn_t;

typedef struct {
    int connections;
    pthread_t thread;
    unsigned *latencies_us;
    size_t count, capacity;
    long long non2xx, errors;
} worker_t;

static struct sockaddr_in target;
static char *request;
static size_t request_len;
static int is_head;
static double deadline;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_conn(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&target, sizeof target) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    return fd;
}

static void start_request(int ep, conn_t *c) {
    c->writing = 1;
    c->sent = 0;
    c->head_len = 0;
    c->in_body = 0;
    c->started = now();
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int reconnect(int ep, conn_t *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = open_conn();
    if (c->fd < 0) return -1;
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    start_request(ep, c);
    return 0;
}

static void record(worker_t *w, conn_t *c, int status) {
    if (w->count == w->capacity) {
        w->capacity = w->capacity ? w->capacity * 2 : 65536;
        w->latencies_us = realloc(w->latencies_us, w->capacity * sizeof *w->latencies_us);
    }
    w->latencies_us[w->count++] = (unsigned)((now() - c->started) * 1e6);
    if (status < 200 || status > 399) w->non2xx++;
}

/* Parses a complete header block; returns the body length to expect, or -1. */
static long long parse_head(conn_t *c, int *status) {
    c->head[c->head_len] = '\0';
    if (strncmp(c->head, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(c->head + 9);
    if (is_head || *status == 204 || *status == 304 || *status < 200) return 0;
    char *line = strstr(c->head, "\r\n");
    while (line != NULL && line[2] != '\r') {
        line += 2;
        if (strncasecmp(line, "content-length:", 15) == 0) return atoll(line + 15);
        if (strncasecmp(line, "transfer-encoding:", 18) == 0) return -1; /* not needed here */
        line = strstr(line, "\r\n");
    }
    return -1;
}

static void *run(void *arg) {
    worker_t *w = arg;
    int ep = epoll_create1(0);
    conn_t *conns = calloc(w->connections, sizeof *conns);
    static __thread char scratch[1 << 18];
    for (int i = 0; i < w->connections; i++) {
        conns[i].fd = open_conn();
        if (conns[i].fd < 0) {
            perror("connect");
            exit(2);
        }
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = &conns[i]};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
        start_request(ep, &conns[i]);
    }
    struct epoll_event events[256];
    while (now() < deadline) {
        int n = epoll_wait(ep, events, 256, 50);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c->writing) {
                ssize_t r = write(c->fd, request + c->sent, request_len - c->sent);
                if (r < 0 && errno == EAGAIN) continue;
                if (r <= 0) {
                    w->errors++;
                    if (reconnect(ep, c) != 0) exit(2);
                    continue;
                }
                c->sent += (size_t)r;
                if (c->sent == request_len) {
                    c->writing = 0;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
                continue;
            }
            for (;;) {
                ssize_t r;
                if (c->in_body) {
                    r = read(c->fd, scratch, sizeof scratch);
                } else {
                    r = read(c->fd, c->head + c->head_len, HEAD_MAX - c->head_len);
                }
                if (r < 0 && errno == EAGAIN) break;
                if (r <= 0) {
                    w->errors++;
                    if (reconnect(ep, c) != 0) exit(2);
                    break;
                }
                int status = 0;
                if (c->in_body) {
                    c->body_got += r;
                } else {
                    c->head_len += (size_t)r;
                    c->head[c->head_len] = '\0';
                    char *end = memmem(c->head, c->head_len, "\r\n\r\n", 4);
                    if (end == NULL) {
                        if (c->head_len == HEAD_MAX) {
                            w->errors++;
                            reconnect(ep, c);
                            break;
                        }
                        continue;
                    }
                    size_t head_len = (size_t)(end - c->head) + 4;
                    size_t extra = c->head_len - head_len;
                    c->head_len = head_len;
                    long long body = parse_head(c, &status);
                    if (body < 0) {
                        w->errors++;
                        reconnect(ep, c);
                        break;
                    }
                    c->in_body = 1;
                    c->body_need = body;
                    c->body_got = (long long)extra;
                    c->status = status;
                }
                if (c->body_got >= c->body_need) {
                    if (c->body_got > c->body_need) w->errors++; /* no pipelining: stray bytes */
                    record(w, c, c->status);
                    start_request(ep, c);
                    break;
                }
            }
        }
    }
    for (int i = 0; i < w->connections; i++) close(conns[i].fd);
    free(conns);
    close(ep);
    return NULL;
}

static int compare(const void *a, const void *b) {
    unsigned x = *(const unsigned *)a, y = *(const unsigned *)b;
    return (x > y) - (x < y);
}

static void usage(void) {
    fprintf(stderr, "usage: hload -c CONNECTIONS -t THREADS -d SECONDS [-m METHOD] "
                    "[-H 'Name: value']... http://IP:PORT/PATH\n");
    exit(2);
}

int main(int argc, char **argv) {
    int connections = 32, threads = 2;
    double seconds = 10;
    const char *method = "GET";
    const char *headers[MAX_HEADERS];
    int header_count = 0;
    int opt;
    while ((opt = getopt(argc, argv, "c:t:d:m:H:")) != -1) {
        switch (opt) {
        case 'c': connections = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        case 'd': seconds = atof(optarg); break;
        case 'm': method = optarg; break;
        case 'H':
            if (header_count == MAX_HEADERS) usage();
            headers[header_count++] = optarg;
            break;
        default: usage();
        }
    }
    if (optind != argc - 1 || connections < 1 || threads < 1 || seconds <= 0) usage();
    if (threads > connections) threads = connections;
    const char *url = argv[optind];
    if (strncmp(url, "http://", 7) != 0) usage();
    char host[256];
    const char *path = strchr(url + 7, '/');
    const char *host_end = path != NULL ? path : url + strlen(url);
    if (path == NULL) path = "/";
    size_t host_len = (size_t)(host_end - (url + 7));
    if (host_len == 0 || host_len >= sizeof host) usage();
    memcpy(host, url + 7, host_len);
    host[host_len] = '\0';
    char *colon = strrchr(host, ':');
    target.sin_family = AF_INET;
    target.sin_port = htons(colon ? atoi(colon + 1) : 80);
    if (colon) *colon = '\0';
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1) usage();
    if (colon) *colon = ':';
    is_head = strcmp(method, "HEAD") == 0;

    size_t size = strlen(method) + strlen(path) + strlen(host) + 64;
    for (int i = 0; i < header_count; i++) size += strlen(headers[i]) + 2;
    request = malloc(size);
    int len = snprintf(request, size, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, path, host);
    for (int i = 0; i < header_count; i++)
        len += snprintf(request + len, size - len, "%s\r\n", headers[i]);
    len += snprintf(request + len, size - len, "\r\n");
    request_len = (size_t)len;

    worker_t *workers = calloc(threads, sizeof *workers);
    double started = now();
    deadline = started + seconds;
    for (int i = 0; i < threads; i++) {
        workers[i].connections = connections / threads + (i < connections % threads);
        pthread_create(&workers[i].thread, NULL, run, &workers[i]);
    }
    size_t total = 0;
    long long non2xx = 0, errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(workers[i].thread, NULL);
        total += workers[i].count;
        non2xx += workers[i].non2xx;
        errors += workers[i].errors;
    }
    double elapsed = now() - started;
    unsigned *all = malloc((total ? total : 1) * sizeof *all);
    size_t at = 0;
    for (int i = 0; i < threads; i++) {
        memcpy(all + at, workers[i].latencies_us, workers[i].count * sizeof *all);
        at += workers[i].count;
    }
    qsort(all, total, sizeof *all, compare);
    double p50 = total ? all[total / 2] / 1e3 : 0;
    double p99 = total ? all[(size_t)(total * 0.99)] / 1e3 : 0;
    double max = total ? all[total - 1] / 1e3 : 0;
    printf("{\"requests\": %zu, \"seconds\": %.3f, \"rps\": %.1f, \"p50_ms\": %.3f, "
           "\"p99_ms\": %.3f, \"max_ms\": %.3f, \"non2xx\": %lld, \"errors\": %lld}\n",
           total, elapsed, total / elapsed, p50, p99, max, non2xx, errors);
    return 0;
}
