/*
 * vchiq_client.h: the /dev/vchiq ioctl ABI and a minimal client of it (a completion thread
 * with an event queue, services, messages), shared by the vchiq project's C test programs.
 * Written for the project's tests; header-only, one program per translation unit.
 */
#ifndef VCHIQ_CLIENT_H
#define VCHIQ_CLIENT_H
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- The ABI (spec §3.3): native types give the LP64 or the ILP32 layout. ---- */
#define FOURCC(a, b, c, d) (((a) << 24) | ((b) << 16) | ((c) << 8) | (d))
enum { REASON_SERVICE_OPENED, REASON_SERVICE_CLOSED, REASON_MESSAGE_AVAILABLE, REASON_BULK_TRANSMIT_DONE,
       REASON_BULK_RECEIVE_DONE, REASON_BULK_TRANSMIT_ABORTED, REASON_BULK_RECEIVE_ABORTED };
enum { MODE_CALLBACK, MODE_BLOCKING, MODE_NOCALLBACK, MODE_WAITING };

struct header { int msgid; unsigned int size; char data[]; };
struct service_params { int fourcc; void *callback; void *userdata; short version, version_min; };
struct create_service { struct service_params params; int is_open; int is_vchi; unsigned int handle; };
struct element { const void *data; unsigned int size; };
struct queue_message { unsigned int handle; unsigned int count; const struct element *elements; };
struct bulk_transfer { unsigned int handle; void *data; unsigned int size; void *userdata; int mode; };
struct completion { int reason; struct header *header; void *service_userdata; void *bulk_userdata; };
struct await_completion { unsigned int count; struct completion *buf; unsigned int msgbufsize;
                          unsigned int msgbufcount; void **msgbufs; };
struct dequeue_message { unsigned int handle; int blocking; unsigned int bufsize; void *buf; };
struct get_config { unsigned int config_size; void *pconfig; };
struct config { int max_msg_size, bulk_threshold, max_outstanding_bulks, max_services; short version, version_min; };

#define IOC_CONNECT _IO(0xC4, 0)
#define IOC_SHUTDOWN _IO(0xC4, 1)
#define IOC_CREATE_SERVICE _IOWR(0xC4, 2, struct create_service)
#define IOC_REMOVE_SERVICE _IO(0xC4, 3)
#define IOC_QUEUE_MESSAGE _IOW(0xC4, 4, struct queue_message)
#define IOC_QUEUE_BULK_TRANSMIT _IOWR(0xC4, 5, struct bulk_transfer)
#define IOC_QUEUE_BULK_RECEIVE _IOWR(0xC4, 6, struct bulk_transfer)
#define IOC_AWAIT_COMPLETION _IOWR(0xC4, 7, struct await_completion)
#define IOC_DEQUEUE_MESSAGE _IOWR(0xC4, 8, struct dequeue_message)
#define IOC_GET_CLIENT_ID _IO(0xC4, 9)
#define IOC_GET_CONFIG _IOWR(0xC4, 10, struct get_config)
#define IOC_CLOSE_SERVICE _IO(0xC4, 11)
#define IOC_USE_SERVICE _IO(0xC4, 12)
#define IOC_RELEASE_SERVICE _IO(0xC4, 13)
#define IOC_LIB_VERSION _IO(0xC4, 16)
#define IOC_CLOSE_DELIVERED _IO(0xC4, 17)

#define MSG_ECHO 5
#define MSGBUF_SIZE 4096
#define NBUFS 8
#define H(x) ((unsigned long)(x))

static const char *dev = "/dev/vchiq";
static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { int e_ = errno; failures++; printf("FAIL %s:%d: ", __FILE__, __LINE__); \
    printf(__VA_ARGS__); printf(" (errno %d %s)\n", e_, strerror(e_)); fflush(stdout); } } while (0)
#define REQUIRE(cond, ...) do { if (!(cond)) { CHECK(0, __VA_ARGS__); exit(1); } } while (0)

/* The RETRY macro of libvchiq_arm: EINTR means "again". */
static inline int ioctl_retry(int fd, unsigned long cmd, void *arg) {
    int r;
    do { r = ioctl(fd, cmd, arg); } while (r < 0 && errno == EINTR);
    return r;
}

static inline double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- The completion thread, and an event queue for the main thread. ---- */
struct event { int reason; void *service_userdata; void *bulk_userdata; int has_msg; unsigned int size; char data[4096]; };
#define QLEN 256
static struct event queue[QLEN];
static int q_head, q_tail, completion_done;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static int comp_fd;
static pthread_t comp_thread;

/* Service records: the userdata the driver echoes back points at one of these. */
struct svc { unsigned int handle; const char *name; };
static struct svc services[8];
static int nservices;

static inline unsigned int handle_of(void *userdata) {
    for (int i = 0; i < nservices; i++)
        if (userdata == &services[i]) return services[i].handle;
    return 0;
}

static inline void *completion_thread(void *unused) {
    (void)unused;
    struct completion recs[NBUFS];
    void *bufs[NBUFS];
    unsigned int count = 0;
    for (;;) {
        while (count < NBUFS) bufs[count++] = malloc(MSGBUF_SIZE);
        struct await_completion a = { NBUFS, recs, MSGBUF_SIZE, count, bufs };
        int n = ioctl(comp_fd, IOC_AWAIT_COMPLETION, &a);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            CHECK(n == 0, "AWAIT_COMPLETION ended with %d", n);
            break;
        }
        /* Buffers are taken from the end of the array and msgbufcount is written back. */
        unsigned int used = 0;
        for (int i = 0; i < n; i++) {
            if (recs[i].header) {
                CHECK((void *)recs[i].header == bufs[count - 1 - used], "record %d header is not msgbufs[%u]", i,
                      count - 1 - used);
                used++;
            }
        }
        CHECK(a.msgbufcount == count - used, "msgbufcount %u, expected %u", a.msgbufcount, count - used);
        pthread_mutex_lock(&q_lock);
        for (int i = 0; i < n; i++) {
            struct event *e = &queue[q_tail % QLEN];
            memset(e, 0, offsetof(struct event, data));
            e->reason = recs[i].reason;
            e->service_userdata = recs[i].service_userdata;
            e->bulk_userdata = recs[i].bulk_userdata;
            if (recs[i].header) {
                e->has_msg = 1;
                e->size = recs[i].header->size;
                CHECK(e->size <= 4088, "message size %u", e->size);
                memcpy(e->data, recs[i].header->data, e->size <= 4088 ? e->size : 0);
            }
            q_tail++;
        }
        pthread_cond_broadcast(&q_cond);
        pthread_mutex_unlock(&q_lock);
        for (int i = 0; i < n; i++) {
            if (recs[i].reason == REASON_SERVICE_CLOSED) {
                unsigned int h = handle_of(recs[i].service_userdata);
                if (h) CHECK(ioctl(comp_fd, IOC_CLOSE_DELIVERED, H(h)) == 0, "CLOSE_DELIVERED");
            }
        }
        for (unsigned int i = 0; i < used; i++) free(bufs[count - 1 - i]);
        count = a.msgbufcount;
    }
    while (count) free(bufs[--count]);
    pthread_mutex_lock(&q_lock);
    completion_done = 1;
    pthread_cond_broadcast(&q_cond);
    pthread_mutex_unlock(&q_lock);
    return NULL;
}

/* Waits up to 10 s for the next event with `reason` (earlier ones of other kinds are dropped). */
static inline int next_event(int reason, struct event *out) {
    double deadline = now() + 10;
    pthread_mutex_lock(&q_lock);
    for (;;) {
        while (q_head != q_tail) {
            struct event *e = &queue[q_head % QLEN];
            q_head++;
            if (e->reason == reason) {
                if (out) memcpy(out, e, sizeof *e);
                pthread_mutex_unlock(&q_lock);
                return 1;
            }
        }
        if (completion_done || now() > deadline) break;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) { ts.tv_sec++; ts.tv_nsec -= 1000000000; }
        pthread_cond_timedwait(&q_cond, &q_lock, &ts);
    }
    pthread_mutex_unlock(&q_lock);
    return 0;
}

static void dummy_callback(void) {}

static inline int open_dev(void) {
    int fd = open(dev, O_RDWR);
    REQUIRE(fd >= 0, "open %s", dev);
    struct config cfg;
    memset(&cfg, 0, sizeof cfg);
    struct get_config gc = { sizeof cfg, &cfg };
    REQUIRE(ioctl_retry(fd, IOC_GET_CONFIG, &gc) == 0, "GET_CONFIG");
    CHECK(cfg.version >= 3 && cfg.version_min <= 8, "config version %d/%d", cfg.version, cfg.version_min);
    CHECK(cfg.max_msg_size == 4088, "max_msg_size %d", cfg.max_msg_size);
    if (cfg.version >= 7) REQUIRE(ioctl(fd, IOC_LIB_VERSION, H(8)) == 0, "LIB_VERSION");
    return fd;
}

static inline void connect_dev(int fd) {
    REQUIRE(ioctl_retry(fd, IOC_CONNECT, 0) == 0, "CONNECT");
    comp_fd = fd;
    pthread_create(&comp_thread, NULL, completion_thread, NULL);
}

static inline struct svc *open_service_version(int fd, const char *fourcc, int vchi, short version, short version_min) {
    struct svc *s = &services[nservices++];
    s->name = fourcc;
    struct create_service cs;
    memset(&cs, 0, sizeof cs);
    cs.params.fourcc = FOURCC(fourcc[0], fourcc[1], fourcc[2], fourcc[3]);
    cs.params.callback = vchi ? NULL : (void *)dummy_callback;
    cs.params.userdata = s;
    cs.params.version = version;
    cs.params.version_min = version_min;
    cs.is_open = 1;
    cs.is_vchi = vchi;
    REQUIRE(ioctl_retry(fd, IOC_CREATE_SERVICE, &cs) == 0, "CREATE_SERVICE %s", fourcc);
    CHECK(cs.handle != 0, "handle written back");
    s->handle = cs.handle;
    return s;
}

static inline struct svc *open_service(int fd, const char *fourcc, int vchi) {
    return open_service_version(fd, fourcc, vchi, 3, 3);
}

static inline void queue_msg(int fd, struct svc *s, const void *a, unsigned int alen, const void *b, unsigned int blen) {
    struct element el[2] = { { a, alen }, { b, blen } };
    struct queue_message qm = { s->handle, b ? 2 : 1, el };
    REQUIRE(ioctl_retry(fd, IOC_QUEUE_MESSAGE, &qm) == 0, "QUEUE_MESSAGE");
}

static inline void close_and_shutdown(int fd, struct svc *s) {
    CHECK(ioctl_retry(fd, IOC_CLOSE_SERVICE, (void *)H(s->handle)) == 0, "CLOSE_SERVICE");
    ioctl_retry(fd, IOC_REMOVE_SERVICE, (void *)H(s->handle));
    CHECK(ioctl_retry(fd, IOC_SHUTDOWN, 0) == 0, "SHUTDOWN");
    pthread_join(comp_thread, NULL);
}

#endif
