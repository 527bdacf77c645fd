// writev floor: N loopback TCP connections (TCP_NODELAY on the writing side, as tinysse sets it);
// time R rounds of one writev of a ~100-byte SSE event to each of the N sockets in turn.
// mode 0: nobody reads (the data queues in the receive buffers; R*100 B must fit);
// mode 1: a reader thread drains all N receiving sockets with epoll (edge-triggered), as a
// subscriber process would, competing for the CPUs.
// usage: writev_floor N ROUNDS MODE
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <errno.h>

static int n, *rd, *wr; static volatile int stop;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static void *reader(void *arg) {
    (void)arg; int ep = epoll_create1(0); char buf[65536];
    for (int i = 0; i < n; i++) { struct epoll_event e = {.events = EPOLLIN | EPOLLET, .data.u32 = i}; epoll_ctl(ep, EPOLL_CTL_ADD, rd[i], &e); }
    struct epoll_event ev[1024];
    while (!stop) {
        int k = epoll_wait(ep, ev, 1024, 20);
        for (int j = 0; j < k; j++) while (read(rd[ev[j].data.u32], buf, sizeof buf) > 0) {}
    }
    return 0;
}
int main(int argc, char **argv) {
    n = atoi(argv[1]); int rounds = atoi(argv[2]), mode = atoi(argv[3]);
    rd = calloc(n, sizeof(int)); wr = calloc(n, sizeof(int));
    int l = socket(AF_INET, SOCK_STREAM, 0); struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(l, (void *)&a, sizeof a); listen(l, 4096); socklen_t al = sizeof a; getsockname(l, (void *)&a, &al);
    for (int i = 0; i < n; i++) {
        rd[i] = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(rd[i], (void *)&a, sizeof a)) { perror("connect"); return 1; }
        wr[i] = accept(l, 0, 0); int one = 1; setsockopt(wr[i], IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(wr[i], F_SETFL, O_NONBLOCK); fcntl(rd[i], F_SETFL, O_NONBLOCK);
    }
    char ev[100]; memset(ev, 'x', sizeof ev); memcpy(ev, "id: 1764614400000001\ndata: 12345 123456789012345 ", 49); ev[98] = '\n'; ev[99] = '\n';
    pthread_t t; if (mode == 1) pthread_create(&t, 0, reader, 0);
    usleep(100000);
    long ok = 0, eagain = 0; double t0 = now();
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n; i++) {
            struct iovec v[2] = {{ev, 60}, {ev + 60, 40}};
            if (writev(wr[i], v, 2) > 0) ok++; else if (errno == EAGAIN) eagain++;
        }
    double dt = now() - t0;
    stop = 1; if (mode == 1) pthread_join(t, 0);
    printf("N=%d rounds=%d mode=%s: %.0f ns per writev (%ld ok, %ld EAGAIN); one pass over N = %.3f ms, a 512 chunk = %.3f ms\n",
           n, rounds, mode ? "reader-drains" : "no-reader", dt / (ok + eagain) * 1e9, ok, eagain, dt / rounds * 1e3, dt / (ok + eagain) * 512 * 1e3);
    return 0;
}
