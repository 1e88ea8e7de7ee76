/*
 * vchiq_ioctl.c: a client of the /dev/vchiq ioctl ABI, written for the vchiq project's tests.
 *
 * It uses the ABI the way libvchiq_arm does (spec vchiq.md §3, §4): a completion thread
 * blocked in AWAIT_COMPLETION with message buffers taken from the end of the array, VCHI
 * services driven by DEQUEUE_MESSAGE, bulk transfers in CALLBACK and BLOCKING modes, the
 * WAITING retry after a signal, GET_CLIENT_ID as the ioctl's return value. The structs are
 * declared with native C types, so a -m32 build uses the ILP32 layout and numbers.
 *
 * Usage: vchiq_ioctl [-d DEVICE] TEST [N]; exit status 0 = pass. Each failed check prints
 * "FAIL ...". DEVICE defaults to /dev/vchiq.
 */
#include "vchiq_client.h"

/* ---- Tests ---- */

/* Messages echoed through a VCHIQ-style service; completions carry the headers. */
static int test_echo(int iters) {
    int fd = open_dev();
    connect_dev(fd);
    struct svc *s = open_service(fd, "echo", 0);
    for (int i = 0; i < iters; i++) {
        unsigned int word = MSG_ECHO;
        char text[64];
        int len = snprintf(text, sizeof text, "hello %d from the completion-thread test", i);
        queue_msg(fd, s, &word, 4, text, len);
        struct event e;
        REQUIRE(next_event(REASON_MESSAGE_AVAILABLE, &e), "echo reply %d", i);
        CHECK(e.service_userdata == s, "service_userdata");
        CHECK(e.has_msg && e.size == 4u + len && memcmp(e.data + 4, text, len) == 0, "echoed bytes (size %u)", e.size);
    }
    int id = ioctl(fd, IOC_GET_CLIENT_ID, (void *)H(s->handle));
    CHECK(id == getpid(), "GET_CLIENT_ID %d != getpid %d", id, getpid());
    CHECK(ioctl(fd, IOC_USE_SERVICE, (void *)H(s->handle)) == 0, "USE_SERVICE");
    CHECK(ioctl(fd, IOC_RELEASE_SERVICE, (void *)H(s->handle)) == 0, "RELEASE_SERVICE");
    static char dump[1 << 16];
    ssize_t n = read(fd, dump, sizeof dump - 1);
    CHECK(n > 0, "read() the state dump");
    if (n > 0) {
        dump[n] = 0;
        CHECK(strstr(dump, "Instance") != NULL, "dump names instances: %.80s", dump);
    }
    close_and_shutdown(fd, s);
    close(fd);
    return 0;
}

/* A VCHI-style service: MESSAGE_AVAILABLE without a header, then DEQUEUE_MESSAGE. */
static int test_vchi(void) {
    int fd = open_dev();
    connect_dev(fd);
    struct svc *s = open_service(fd, "echo", 1);
    static char buf[4096];
    struct dequeue_message dq = { s->handle, 0, sizeof buf, buf };
    errno = 0;
    CHECK(ioctl(fd, IOC_DEQUEUE_MESSAGE, &dq) == -1 && errno == EWOULDBLOCK, "non-blocking DEQUEUE on an empty queue");
    /* A message that arrives while nobody is dequeuing: one notification, no header. */
    unsigned int first[2] = { MSG_ECHO, 0xabcd };
    queue_msg(fd, s, first, sizeof first, NULL, 0);
    struct event e;
    CHECK(next_event(REASON_MESSAGE_AVAILABLE, &e) && !e.has_msg, "VCHI notification without a header");
    struct dequeue_message d0 = { s->handle, 0, sizeof buf, buf };
    CHECK(ioctl(fd, IOC_DEQUEUE_MESSAGE, &d0) == (int)sizeof first && memcmp(buf, first, sizeof first) == 0,
          "non-blocking DEQUEUE of the notified message");
    /* Blocking dequeues racing the replies (notifications are coalesced, or skipped while
     * a dequeue waits). */
    for (int i = 0; i < 20; i++) {
        unsigned int word[3] = { MSG_ECHO, 0x1234, (unsigned)i };
        queue_msg(fd, s, word, sizeof word, NULL, 0);
        struct dequeue_message d = { s->handle, 1, sizeof buf, buf };
        int n = ioctl_retry(fd, IOC_DEQUEUE_MESSAGE, &d);
        CHECK(n == (int)sizeof word && memcmp(buf, word, sizeof word) == 0, "blocking DEQUEUE returned %d", n);
    }
    /* Too small a buffer: EMSGSIZE; a NULL buffer discards. */
    unsigned int word[4] = { MSG_ECHO, 1, 2, 3 };
    queue_msg(fd, s, word, sizeof word, NULL, 0);
    usleep(100000);
    struct dequeue_message small = { s->handle, 1, 4, buf };
    errno = 0;
    CHECK(ioctl(fd, IOC_DEQUEUE_MESSAGE, &small) == -1 && errno == EMSGSIZE, "EMSGSIZE for a small buffer");
    struct dequeue_message discard = { s->handle, 1, 4096, NULL };
    CHECK(ioctl_retry(fd, IOC_DEQUEUE_MESSAGE, &discard) == 16, "NULL buffer discards");
    close_and_shutdown(fd, s);
    close(fd);
    return 0;
}

static void fill(unsigned char *p, unsigned int n, unsigned int seed) {
    for (unsigned int i = 0; i < n; i++) p[i] = (unsigned char)(i * 7 + seed + (i >> 8));
}

/* One fun2 exchange: ask for len bytes, transmit them, receive them back. */
static void bulk_round(int fd, struct svc *s, unsigned int len, int mode, int seed) {
    unsigned char *tx = malloc(len), *rx = calloc(1, len);
    fill(tx, len, seed);
    unsigned int req[4] = { len, 0, 0, (unsigned)seed };
    queue_msg(fd, s, req, sizeof req, NULL, 0);
    void *ud_tx = (void *)(uintptr_t)(0x1000 + seed), *ud_rx = (void *)(uintptr_t)(0x2000 + seed);
    struct bulk_transfer t = { s->handle, tx, len, ud_tx, mode };
    struct bulk_transfer r = { s->handle, rx, len, ud_rx, mode };
    REQUIRE(ioctl_retry(fd, IOC_QUEUE_BULK_TRANSMIT, &t) == 0, "transmit of %u (mode %d)", len, mode);
    REQUIRE(ioctl_retry(fd, IOC_QUEUE_BULK_RECEIVE, &r) == 0, "receive of %u (mode %d)", len, mode);
    if (mode == MODE_CALLBACK) {
        struct event e;
        REQUIRE(next_event(REASON_BULK_TRANSMIT_DONE, &e), "BULK_TRANSMIT_DONE");
        CHECK(e.bulk_userdata == ud_tx && e.service_userdata == s, "transmit userdata");
        REQUIRE(next_event(REASON_BULK_RECEIVE_DONE, &e), "BULK_RECEIVE_DONE");
        CHECK(e.bulk_userdata == ud_rx, "receive userdata");
    }
    CHECK(memcmp(tx, rx, len) == 0, "received bulk of %u bytes differs (mode %d)", len, mode);
    free(tx);
    free(rx);
}

static int test_bulk(void) {
    int fd = open_dev();
    connect_dev(fd);
    struct svc *s = open_service(fd, "fun2", 0);
    unsigned int sizes[] = { 1, 1000, 4096, 65536, 1 << 20 };
    int seed = 1;
    for (unsigned int i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        bulk_round(fd, s, sizes[i], MODE_CALLBACK, seed++);
        bulk_round(fd, s, sizes[i], MODE_BLOCKING, seed++);
    }
    close_and_shutdown(fd, s);
    close(fd);
    return 0;
}

/* A signal during a BLOCKING bulk: EINTR with mode = WAITING, and the retry completes. */
static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { (void)sig; got_signal = 1; }
static void *kick(void *arg) {
    usleep(300000);
    pthread_kill(*(pthread_t *)arg, SIGUSR1);
    return NULL;
}

static int test_signal(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* as with the real driver: EINTR all the same */
    sigaction(SIGUSR1, &sa, NULL);
    int fd = open_dev();
    connect_dev(fd);
    struct svc *s = open_service(fd, "fun2", 0);
    unsigned int len = 8192;
    unsigned char *tx = malloc(len), *rx = calloc(1, len);
    fill(tx, len, 99);
    struct bulk_transfer r = { s->handle, rx, len, (void *)0x77, MODE_BLOCKING };
    pthread_t me = pthread_self(), kt;
    pthread_create(&kt, NULL, kick, &me);
    double t0 = now();
    errno = 0;
    int ret = ioctl(fd, IOC_QUEUE_BULK_RECEIVE, &r);
    double waited = now() - t0;
    pthread_join(kt, NULL);
    CHECK(ret == -1 && errno == EINTR, "interrupted BLOCKING receive returned %d", ret);
    CHECK(got_signal, "the handler ran");
    CHECK(r.mode == MODE_WAITING, "mode written back as WAITING (%d)", r.mode);
    CHECK(waited > 0.2 && waited < 2.0, "interrupted after %.3f s", waited);
    /* Now let fun2 send: ask for len bytes, transmit them, and resume the wait. */
    unsigned int req[4] = { len, 0, 0, 0 };
    queue_msg(fd, s, req, sizeof req, NULL, 0);
    struct bulk_transfer t = { s->handle, tx, len, (void *)0x78, MODE_CALLBACK };
    REQUIRE(ioctl_retry(fd, IOC_QUEUE_BULK_TRANSMIT, &t) == 0, "transmit");
    int again = ioctl_retry(fd, IOC_QUEUE_BULK_RECEIVE, &r);
    CHECK(again == 0, "WAITING retry completed (%d)", again);
    CHECK(memcmp(tx, rx, len) == 0, "data of the resumed receive");
    /* WAITING with nothing saved for this thread: ESRCH. */
    struct bulk_transfer w = { s->handle, rx, len, 0, MODE_WAITING };
    errno = 0;
    CHECK(ioctl(fd, IOC_QUEUE_BULK_RECEIVE, &w) == -1 && errno == ESRCH, "WAITING without a saved waiter");
    close_and_shutdown(fd, s);
    close(fd);
    return 0;
}

/* Prints what the driver says about this process (run it inside a PID namespace). */
static int test_clientid(void) {
    int fd = open_dev();
    connect_dev(fd);
    struct svc *s = open_service(fd, "echo", 0);
    int id = ioctl(fd, IOC_GET_CLIENT_ID, (void *)H(s->handle));
    /* NSpid's first field is this process's PID in the namespace /proc was mounted for. */
    char line[256], host[32] = "?";
    FILE *st = fopen("/proc/self/status", "r");
    while (st && fgets(line, sizeof line, st))
        if (sscanf(line, "NSpid: %31s", host) == 1) break;
    if (st) fclose(st);
    printf("pid: %d\nclient_id: %d\nproc_pid: %s\n", getpid(), id, host);
    CHECK(ioctl(fd, IOC_GET_CLIENT_ID, (void *)H(0x7777)) == 0, "an unknown handle gives 0");
    close_and_shutdown(fd, s);
    close(fd);
    return 0;
}

/* dup and fork share the instance; the last close ends it. */
static int test_dupfork(void) {
    int fd = open_dev();
    int fd2 = dup(fd);
    REQUIRE(fd2 >= 0, "dup");
    REQUIRE(ioctl_retry(fd2, IOC_CONNECT, 0) == 0, "CONNECT through the dup");
    errno = 0;
    CHECK(ioctl(fd, IOC_CONNECT, 0) == -1 && errno == EINVAL, "a second CONNECT on the same instance is EINVAL");
    struct svc *s = open_service(fd2, "echo", 0);
    pid_t parent = getpid();
    /* The completion thread starts after the child is done: the preload shim's parent
     * and child share one socket and must not both wait on it (its documented limit). */
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        /* The child uses the inherited fd: same instance, so the same service and client id. */
        int id = ioctl(fd, IOC_GET_CLIENT_ID, (void *)H(s->handle));
        if (id != parent) { printf("FAIL: child sees client id %d, parent %d\n", id, parent); _exit(1); }
        unsigned int word = MSG_ECHO;
        struct element el[2] = { { &word, 4 }, { "from the child", 14 } };
        struct queue_message qm = { s->handle, 2, el };
        if (ioctl_retry(fd, IOC_QUEUE_MESSAGE, &qm) != 0) { printf("FAIL: child QUEUE_MESSAGE %d\n", errno); _exit(1); }
        close(fd);
        close(fd2);
        _exit(0);
    }
    int status;
    waitpid(child, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %x", status);
    comp_fd = fd;
    pthread_create(&comp_thread, NULL, completion_thread, NULL);
    struct event e;
    CHECK(next_event(REASON_MESSAGE_AVAILABLE, &e) && e.size == 18 && memcmp(e.data + 4, "from the child", 14) == 0,
          "the child's message was echoed to the shared instance");
    /* Closing one descriptor does not end the instance. */
    close(fd2);
    int id = ioctl(fd, IOC_GET_CLIENT_ID, (void *)H(s->handle));
    CHECK(id == parent, "instance alive after closing the dup (%d)", id);
    close_and_shutdown(fd, s);
    close(fd);
    return 0;
}

/* Bad pointers and arguments get errors, and the daemon keeps serving. */
static int test_badptr(void) {
    int fd = open_dev();
    connect_dev(fd);
    struct svc *s = open_service(fd, "echo", 0);
    long page = sysconf(_SC_PAGESIZE);
    char *gone = mmap(NULL, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(gone + page, page);
    char *hole = gone + page;

    struct queue_message qm = { s->handle, 1, NULL };
    errno = 0;
    CHECK(ioctl(fd, IOC_QUEUE_MESSAGE, &qm) == -1 && (errno == EFAULT || errno == EINVAL), "NULL elements");
    struct element el[9];
    for (int i = 0; i < 9; i++) { el[i].data = "x"; el[i].size = 1; }
    struct queue_message nine = { s->handle, 9, el };
    errno = 0;
    CHECK(ioctl(fd, IOC_QUEUE_MESSAGE, &nine) == -1 && errno == EINVAL, "count 9 > MAX_ELEMENTS");
    struct element nulldata = { NULL, 5 };
    struct queue_message qn = { s->handle, 1, &nulldata };
    errno = 0;
    CHECK(ioctl(fd, IOC_QUEUE_MESSAGE, &qn) == -1 && errno == EFAULT, "element with NULL data");
    /* One valid element at the end of a mapped page, a count of 3 runs into the hole. */
    struct element *last = (struct element *)(hole - sizeof(struct element));
    last->data = "x";
    last->size = 1;
    struct queue_message past = { s->handle, 3, last };
    errno = 0;
    CHECK(ioctl(fd, IOC_QUEUE_MESSAGE, &past) == -1 && errno == EFAULT, "count past the array");
    struct element unm = { hole, 16 };
    struct queue_message qu = { s->handle, 1, &unm };
    errno = 0;
    CHECK(ioctl(fd, IOC_QUEUE_MESSAGE, &qu) == -1 && errno == EFAULT, "element data unmapped");
    errno = 0;
    CHECK(ioctl(fd, IOC_QUEUE_MESSAGE, (void *)hole) == -1 && errno == EFAULT, "the struct itself unmapped");
    struct bulk_transfer bt = { s->handle, hole, 4096, 0, MODE_CALLBACK };
    errno = 0;
    CHECK(ioctl(fd, IOC_QUEUE_BULK_TRANSMIT, &bt) == -1 && errno == EFAULT, "bulk transmit data unmapped");
    struct bulk_transfer br = { s->handle, hole, 4096, 0, MODE_CALLBACK };
    errno = 0;
    CHECK(ioctl(fd, IOC_QUEUE_BULK_RECEIVE, &br) == -1 && errno == EFAULT, "bulk receive buffer unmapped");
    struct bulk_transfer bm = { s->handle, el, 16, 0, 42 };
    errno = 0;
    CHECK(ioctl(fd, IOC_QUEUE_BULK_TRANSMIT, &bm) == -1, "bad bulk mode");
    struct get_config gc = { 20, NULL };
    errno = 0;
    CHECK(ioctl(fd, IOC_GET_CONFIG, &gc) == -1 && errno == EFAULT, "GET_CONFIG into NULL");
    struct config cfg;
    struct get_config big = { 21, &cfg };
    errno = 0;
    CHECK(ioctl(fd, IOC_GET_CONFIG, &big) == -1 && errno == EINVAL, "config_size 21");
    struct dequeue_message dq = { s->handle, 0, 16, el };
    errno = 0;
    CHECK(ioctl(fd, IOC_DEQUEUE_MESSAGE, &dq) == -1 && errno == EINVAL, "DEQUEUE on a non-VCHI service");
    errno = 0;
    CHECK(ioctl(fd, IOC_CLOSE_SERVICE, (void *)H(0x12345)) == -1 && errno == EINVAL, "CLOSE of a bad handle");
    errno = 0;
    CHECK(ioctl(fd, _IO(0xC4, 99), 0) == -1 && errno == ENOTTY, "unknown command");
    errno = 0;
    CHECK(ioctl(fd, IOC_LIB_VERSION, H(2)) == -1 && errno == EINVAL, "LIB_VERSION 2");
    /* A second instance: AWAIT_COMPLETION into unmapped arrays. */
    int fd2 = open(dev, O_RDWR);
    CHECK(ioctl_retry(fd2, IOC_CONNECT, 0) == 0, "CONNECT 2");
    void *bufs[1] = { hole };
    struct await_completion aw = { 8, (struct completion *)hole, 4096, 1, bufs };
    errno = 0;
    CHECK(ioctl(fd2, IOC_AWAIT_COMPLETION, &aw) == -1 && errno == EFAULT, "AWAIT with buf unmapped");
    struct completion recs[8];
    struct await_completion aw2 = { 8, recs, 4096, 4, (void **)hole };
    errno = 0;
    CHECK(ioctl(fd2, IOC_AWAIT_COMPLETION, &aw2) == -1 && errno == EFAULT, "AWAIT with msgbufs unmapped");
    close(fd2);
    /* Still serving. */
    unsigned int word = MSG_ECHO;
    queue_msg(fd, s, &word, 4, "alive", 5);
    struct event e;
    CHECK(next_event(REASON_MESSAGE_AVAILABLE, &e) && e.size == 9, "echo after the bad calls");
    close_and_shutdown(fd, s);
    close(fd);
    return 0;
}

/* Blocks in AWAIT_COMPLETION for ever (the harness kills it). */
static int test_block(void) {
    int fd = open_dev();
    REQUIRE(ioctl_retry(fd, IOC_CONNECT, 0) == 0, "CONNECT");
    struct completion recs[8];
    void *bufs[8];
    for (int i = 0; i < 8; i++) bufs[i] = malloc(MSGBUF_SIZE);
    printf("blocked %d\n", getpid());
    fflush(stdout);
    for (;;) {
        struct await_completion a = { 8, recs, MSGBUF_SIZE, 8, bufs };
        ioctl(fd, IOC_AWAIT_COMPLETION, &a);
    }
}

/* Round trips on echo: prints microseconds per message round trip. */
static int test_ping(int iters) {
    int fd = open_dev();
    connect_dev(fd);
    struct svc *s = open_service(fd, "echo", 0);
    unsigned int word = MSG_ECHO;
    for (int i = 0; i < 200; i++) {
        queue_msg(fd, s, &word, 4, "ping", 4);
        REQUIRE(next_event(REASON_MESSAGE_AVAILABLE, NULL), "warm-up");
    }
    double t0 = now();
    for (int i = 0; i < iters; i++) {
        queue_msg(fd, s, &word, 4, "ping", 4);
        REQUIRE(next_event(REASON_MESSAGE_AVAILABLE, NULL), "ping %d", i);
    }
    printf("ping_us: %.1f\n", (now() - t0) * 1e6 / iters);
    close_and_shutdown(fd, s);
    close(fd);
    return 0;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "-d") == 0) { dev = argv[i + 1]; i += 2; }
    if (i >= argc) {
        fprintf(stderr, "usage: %s [-d DEV] echo|vchi|bulk|signal|clientid|dupfork|badptr|block|ping [N]\n", argv[0]);
        return 2;
    }
    const char *t = argv[i];
    int n = i + 1 < argc ? atoi(argv[i + 1]) : 0;
    int r;
    if (!strcmp(t, "echo")) r = test_echo(n ? n : 50);
    else if (!strcmp(t, "vchi")) r = test_vchi();
    else if (!strcmp(t, "bulk")) r = test_bulk();
    else if (!strcmp(t, "signal")) r = test_signal();
    else if (!strcmp(t, "clientid")) r = test_clientid();
    else if (!strcmp(t, "dupfork")) r = test_dupfork();
    else if (!strcmp(t, "badptr")) r = test_badptr();
    else if (!strcmp(t, "block")) r = test_block();
    else if (!strcmp(t, "ping")) r = test_ping(n ? n : 2000);
    else { fprintf(stderr, "unknown test %s\n", t); return 2; }
    if (failures) printf("%d check(s) failed\n", failures);
    else printf("PASS %s (%s, %d-bit)\n", t, dev, (int)sizeof(void *) * 8);
    return r || failures ? 1 : 0;
}
