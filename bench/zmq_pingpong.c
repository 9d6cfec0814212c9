/* hamok-zmq-pingpong: the floor under the zmq transport. Two processes on
 * loopback — this one and a child it forks — talk through bare libzmq the
 * way the transport does (a DEALER connected to the other's ROUTER, the
 * ROUTER answering on the same connection): sequential round trips, then
 * round trips with K in flight. What a replicated write over the mesh costs
 * beyond this is Hamok's.
 *
 *   hamok-zmq-pingpong [--count N] [--inflight K] [--seconds S] [--size B]
 *
 * No pass/fail: the figures go in bench/README.md (hamok-cluster-bench runs
 * this in the same session as the cluster). */
#define _GNU_SOURCE
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void die(const char *what)
{
    fprintf(stderr, "hamok-zmq-pingpong: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

/* The child: a ROUTER that sends every frame back to its sender. */
static void echo_server(void *ctx, int ready_fd)
{
    void *r = zmq_socket(ctx, ZMQ_ROUTER);
    int unbounded = 0; /* a ROUTER drops what does not fit: no HWM here */
    zmq_setsockopt(r, ZMQ_SNDHWM, &unbounded, sizeof unbounded);
    zmq_setsockopt(r, ZMQ_RCVHWM, &unbounded, sizeof unbounded);
    if (r == NULL || zmq_bind(r, "tcp://127.0.0.1:*") != 0) {
        die("bind");
    }
    char ep[256];
    size_t sz = sizeof ep;
    zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &sz);
    if (write(ready_fd, ep, strlen(ep) + 1) < 0) {
        die("pipe");
    }
    close(ready_fd);
    for (;;) {
        zmq_msg_t id, data;
        zmq_msg_init(&id);
        zmq_msg_init(&data);
        if (zmq_msg_recv(&id, r, 0) < 0 || zmq_msg_recv(&data, r, 0) < 0) {
            break;
        }
        zmq_msg_send(&id, r, ZMQ_SNDMORE);
        zmq_msg_send(&data, r, 0);
    }
    _exit(0);
}

int main(int argc, char **argv)
{
    int count = 10000;
    long inflight = 1000;
    double seconds = 3.0;
    size_t size = 128;
    static const struct option longs[] = {
        {"count", required_argument, NULL, 'c'},   {"inflight", required_argument, NULL, 'i'},
        {"seconds", required_argument, NULL, 's'}, {"size", required_argument, NULL, 'b'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        switch (c) {
        case 'c': count = atoi(optarg); break;
        case 'i': inflight = atol(optarg); break;
        case 's': seconds = atof(optarg); break;
        case 'b': size = (size_t)atol(optarg); break;
        default:
            fprintf(stderr,
                    "usage: hamok-zmq-pingpong [--count N] [--inflight K] [--seconds S] "
                    "[--size B]\n");
            return c == 'h' ? 0 : 2;
        }
    }
    if (count < 2 || inflight < 1 || seconds <= 0 || size < 1 || size > 1024 * 1024) {
        fprintf(stderr, "hamok-zmq-pingpong: bad arguments (--help)\n");
        return 2;
    }
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        close(fds[0]);
        echo_server(zmq_ctx_new(), fds[1]);
    }
    close(fds[1]);
    char ep[256] = "";
    ssize_t got = read(fds[0], ep, sizeof ep - 1);
    close(fds[0]);
    if (got <= 0) {
        fprintf(stderr, "hamok-zmq-pingpong: the echo process did not start\n");
        return 1;
    }
    void *ctx = zmq_ctx_new();
    void *d = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(d, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(d, ZMQ_RCVHWM, &zero, sizeof zero);
    if (d == NULL || zmq_connect(d, ep) != 0) {
        die("connect");
    }
    char *buf = calloc(1, size);
    char *in = malloc(size);
    /* Warm up the connection. */
    for (int i = 0; i < 100; i++) {
        zmq_send(d, buf, size, 0);
        zmq_recv(d, in, size, 0);
    }
    uint64_t *lat = malloc((size_t)count * sizeof *lat);
    for (int i = 0; i < count; i++) {
        uint64_t t0 = now_ns();
        if (zmq_send(d, buf, size, 0) < 0 || zmq_recv(d, in, size, 0) < 0) {
            die("round trip");
        }
        lat[i] = now_ns() - t0;
    }
    qsort(lat, (size_t)count, sizeof *lat, cmp_u64);
    printf(
        "| zmq DEALER<->ROUTER ping-pong, 2 processes | %6zu B | %7d | p50 %7.1f us | p99 %7.1f "
        "us |\n",
        size, count, (double)lat[count / 2] / 1000.0,
        (double)lat[(size_t)count * 99 / 100] / 1000.0);
    fflush(stdout);
    /* K in flight: keep the window full for `seconds`. */
    uint64_t done = 0, sent = 0, t0 = now_ns(), end = t0 + (uint64_t)(seconds * 1e9);
    while (now_ns() < end) {
        while ((long)(sent - done) < inflight) {
            if (zmq_send(d, buf, size, 0) < 0) {
                die("send");
            }
            sent++;
        }
        if (zmq_recv(d, in, size, 0) < 0) {
            die("recv");
        }
        done++;
    }
    while (done < sent) {
        zmq_recv(d, in, size, 0);
        done++;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    printf("| zmq ping-pong, %ld in flight | %6zu B | | %9.0f round trips/s |\n", inflight, size,
           (double)done / secs);
    free(lat);
    free(buf);
    free(in);
    zmq_close(d);
    zmq_ctx_term(ctx);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    return 0;
}
