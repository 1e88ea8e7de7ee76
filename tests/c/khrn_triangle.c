/*
 * khrn_triangle.c: a small OpenGL ES 1.1 client of the VideoCore, written for the vchiq
 * project's tests. It speaks the Khronos RPC itself over /dev/vchiq (spec
 * videocore-services.md §2.2, §5), as libEGL/libGLESv2 of the Pi's userland do, with its
 * own minimal definitions and no Khronos headers, so that it can be cross-compiled for
 * any architecture (armhf, arm64 under qemu-user) with nothing but a C compiler:
 *
 *   dispmanx element on display 0 (DISP) → GLES 1.1 context and a 3-buffered window
 *   surface (KHRN) → N frames of { clear to a colour that changes per frame, one
 *   triangle through the vertex cache, swap } → every swap's KHAN post received.
 *
 * Usage: khrn_triangle [-d DEVICE] FRAMES [hold]. Prints "frames: N", "posts: N",
 * "display: WxH", "clear: R G B" (the last frame's clear colour, 0-255) and "PASS"; with
 * `hold` it then waits for stdin to close, keeping the element on display so that a test
 * can take a snapshot of the last frame.
 */
#include "vchiq_client.h"

/* KHRN command ids (khrn_int_ids.h). */
#define EGLINTCREATESURFACE 0x4000
#define EGLINTCREATEGLES11 0x4001
#define EGLINTMAKECURRENT 0x4008
#define EGLINTSWAPBUFFERS 0x400a
#define GLCLEAR 0x7006
#define GLCLEARCOLOR 0x7007
#define GLDISABLE 0x7016
#define GLINTDRAWELEMENTS 0x7018
#define GLVIEWPORT 0x7035
#define GLINTCACHECREATE 0x7037
#define GLINTCACHEDATA 0x703a
#define GLINTCACHEGROW 0x703b
#define GLINTATTRIBPOINTER 0x7117
#define GLINTATTRIBENABLE 0x7119
#define GLINTCOLOR_11 0x1064
/* GL enums. */
#define GL_COLOR_BUFFER_BIT 0x4000
#define GL_TRIANGLES 4
#define GL_FLOAT 0x1406
#define GL_CULL_FACE 0x0B44
/* DISP (dispmanx) commands. */
#define DISP_DISPLAY_OPEN 0x08
#define DISP_DISPLAY_GET_INFO 0x0e
#define DISP_UPDATE_START 0x10
#define DISP_UPDATE_SUBMIT_SYNC 0x12
#define DISP_ELEMENT_ADD 0x13
/* KHAN commands. */
#define ASYNC_COMMAND_POST 1
/* The window surface's colour format (ABGR_8888_RSO) and "none" for the others. */
#define IMAGE_ABGR_8888_RSO 0x9428
#define IMAGE_NONE 0xffffffffu
#define MERGE_WORDS (4080 / 4)
#define CACHE_ENTRY 40

static int fd;
static struct svc *khan, *khrn, *disp;
static unsigned int pid;

static unsigned int fbits(float f) {
    unsigned int u;
    memcpy(&u, &f, 4);
    return u;
}

/* One VCHI request on DISP and its reply, read with a blocking DEQUEUE_MESSAGE. */
static unsigned int disp_call(const unsigned int *words, unsigned int n, void *reply, unsigned int len) {
    queue_msg(fd, disp, words, n * 4, NULL, 0);
    static unsigned char buf[4096];
    struct dequeue_message d = { disp->handle, 1, sizeof buf, buf };
    int got = ioctl_retry(fd, IOC_DEQUEUE_MESSAGE, &d);
    REQUIRE(got >= 4, "DISP reply to command %#x (%d)", words[0], got);
    if (reply) memcpy(reply, buf, (unsigned)got < len ? (unsigned)got : len);
    unsigned int first;
    memcpy(&first, buf, 4);
    return first;
}

/* The merge buffer: every KHRN message starts with a make-current record. */
static unsigned int merge[MERGE_WORDS];
static unsigned int nwords;
static unsigned int cur_ctx, cur_surf;

static void begin_message(void) {
    unsigned int mc[9] = { EGLINTMAKECURRENT, pid, 0, cur_ctx ? 1 : 0, cur_ctx, cur_surf, cur_surf, 0, 0 };
    memcpy(merge, mc, sizeof mc);
    nwords = 9;
}

static void put(unsigned int n, const unsigned int *w) {
    REQUIRE(nwords + n <= MERGE_WORDS, "merge buffer overflow");
    memcpy(merge + nwords, w, n * 4);
    nwords += n;
}

static void flush(void) {
    if (nwords > 9) queue_msg(fd, khrn, merge, nwords * 4, NULL, 0);
    begin_message();
}

/* KHAN posts for this client's surface semaphore (name 1), and anything else on KHAN. */
static int khan_posts, khan_bad;

static void khan_posts_seen(const struct event *e) {
    unsigned int w[4] = { 0 };
    memcpy(w, e->data, e->size < 16 ? e->size : 16);
    if (e->size == 16 && w[0] == ASYNC_COMMAND_POST && w[1] == pid && w[3] == 1)
        khan_posts++;
    else
        khan_bad++;
}

/* The next message the VideoCore sends on `s` (KHRN replies, KHAN posts). */
static unsigned int next_message(struct svc *s, unsigned int *words, unsigned int max) {
    struct event e;
    for (;;) {
        REQUIRE(next_event(REASON_MESSAGE_AVAILABLE, &e), "no message from the VideoCore on %s", s->name);
        if (e.service_userdata == s) break;
        if (e.service_userdata == khan) khan_posts_seen(&e);
    }
    unsigned int n = e.size / 4 < max ? e.size / 4 : max;
    memcpy(words, e.data, n * 4);
    return e.size;
}

int main(int argc, char **argv) {
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "-d") == 0) { dev = argv[i + 1]; i += 2; }
    if (i >= argc) {
        fprintf(stderr, "usage: %s [-d DEV] FRAMES [hold]\n", argv[0]);
        return 2;
    }
    int frames = atoi(argv[i]);
    int hold = i + 1 < argc && strcmp(argv[i + 1], "hold") == 0;

    fd = open_dev();
    connect_dev(fd);
    disp = open_service_version(fd, "DISP", 1, 1, 1);
    khan = open_service_version(fd, "KHAN", 0, 1, 1);
    khrn = open_service_version(fd, "KHRN", 0, 1, 1);
    /* The attested client id, not getpid(): the fix of 2016. */
    pid = (unsigned int)ioctl(fd, IOC_GET_CLIENT_ID, (void *)H(khrn->handle));
    REQUIRE((int)pid > 0, "GET_CLIENT_ID");

    /* A full-screen dispmanx element for the window. */
    unsigned int open0[2] = { DISP_DISPLAY_OPEN, 0 };
    unsigned int display = disp_call(open0, 2, NULL, 0);
    unsigned int info_req[2] = { DISP_DISPLAY_GET_INFO, display };
    unsigned int info[5] = { 0 };
    disp_call(info_req, 2, info, sizeof info);
    unsigned int W = info[1], H = info[2];
    REQUIRE(W > 0 && H > 0 && W <= 2048 && H <= 2048, "display size %ux%u", W, H);
    unsigned int start[2] = { DISP_UPDATE_START, 0 };
    unsigned int update = disp_call(start, 2, NULL, 0);
    unsigned int add[27] = { DISP_ELEMENT_ADD, update, display, 0, 0, 0, W, H, 0, 0, 0, W << 16, H << 16 };
    unsigned int element = disp_call(add, 27, NULL, 0);
    REQUIRE(element != 0, "ElementAdd");
    unsigned int submit[2] = { DISP_UPDATE_SUBMIT_SYNC, update };
    CHECK(disp_call(submit, 2, NULL, 0) == 0, "UpdateSubmitSync");

    /* Context and surface. */
    unsigned int reply[8];
    begin_message();
    unsigned int cc[3] = { EGLINTCREATEGLES11, 0, 0 };
    put(3, cc);
    flush();
    REQUIRE(next_message(khrn, reply, 8) == 4 && reply[0] != 0, "EGLINTCREATEGLES11 reply");
    unsigned int ctx = reply[0];
    unsigned int cs[15] = { EGLINTCREATESURFACE, element, 3, W, H, IMAGE_ABGR_8888_RSO, IMAGE_NONE, IMAGE_NONE,
                            IMAGE_NONE, 0, 0, 0, 0, 1, 0 };
    put(15, cs);
    flush();
    REQUIRE(next_message(khrn, reply, 8) == 16 && reply[0] == 12 && reply[3] != 0, "EGLINTCREATESURFACE reply");
    cur_ctx = ctx;
    cur_surf = reply[3];
    begin_message();

    /* The vertex cache: grow it to 128 bytes, one entry holding the triangle. */
    for (int g = 0; g < 2; g++) {
        unsigned int grow = GLINTCACHEGROW;
        put(1, &grow);
        flush();
        REQUIRE(next_message(khrn, reply, 8) == 4 && reply[0] == 1, "GLINTCACHEGROW");
    }
    static const float tri[9] = { -0.5f, -0.5f, 0, 0.5f, -0.5f, 0, 0, 0.5f, 0 };
    unsigned int create[2] = { GLINTCACHECREATE, 0 };
    unsigned int data[3 + 9] = { GLINTCACHEDATA, CACHE_ENTRY, sizeof tri };
    memcpy(data + 3, tri, sizeof tri);
    unsigned int vp[5] = { GLVIEWPORT, 0, 0, W, H };
    unsigned int nocull[2] = { GLDISABLE, GL_CULL_FACE };
    unsigned int ptr[8] = { GLINTATTRIBPOINTER, 1, 0, 3, GL_FLOAT, 0, 0, (unsigned int)(uintptr_t)tri };
    unsigned int en[4] = { GLINTATTRIBENABLE, 1, 0, 1 };
    unsigned int color[5] = { GLINTCOLOR_11, fbits(1.0f), fbits(0.5f), fbits(0.0f), fbits(1.0f) };
    put(2, create);
    put(12, data);
    put(5, vp);
    put(2, nocull);
    put(8, ptr);
    put(4, en);
    put(5, color);

    float last[3] = { 0, 0, 0 };
    for (int f = 0; f < frames; f++) {
        /* The clear colour walks through blue and green; the triangle stays orange. */
        float r = 0.0f, g = (float)(f % 8) / 8.0f, b = 0.25f + (float)(f % 3) / 4.0f;
        last[0] = r; last[1] = g; last[2] = b;
        unsigned int cl[5] = { GLCLEARCOLOR, fbits(r), fbits(g), fbits(b), fbits(1.0f) };
        unsigned int clear[2] = { GLCLEAR, GL_COLOR_BUFFER_BIT };
        unsigned int draw[5 + 1 + 20] = { GLINTDRAWELEMENTS, GL_TRIANGLES, 3, 0, 0, 1 };
        for (int a = 0; a < 10; a++) {
            draw[6 + 2 * a] = a == 0 ? CACHE_ENTRY : 0xffffffffu;
            draw[7 + 2 * a] = a == 0 ? 1 : 0;
        }
        unsigned int swap[7] = { EGLINTSWAPBUFFERS, cur_surf, W, H, element, 0, 0 };
        put(5, cl);
        put(2, clear);
        put(26, draw);
        put(7, swap);
        flush();
    }
    /* Every swap is posted back on KHAN. */
    double deadline = now() + 60;
    while (khan_posts < frames && now() < deadline) {
        struct event e;
        if (next_event(REASON_MESSAGE_AVAILABLE, &e) && e.service_userdata == khan) khan_posts_seen(&e);
    }
    printf("display: %ux%u\nframes: %d\nposts: %d\nclear: %d %d %d\n", W, H, frames, khan_posts,
           (int)(last[0] * 255 + 0.5f), (int)(last[1] * 255 + 0.5f), (int)(last[2] * 255 + 0.5f));
    CHECK(khan_posts == frames, "%d KHAN posts for %d swaps", khan_posts, frames);
    CHECK(khan_bad == 0, "%d KHAN messages were not POSTs for this client", khan_bad);
    if (failures == 0) printf("PASS khrn_triangle (%d-bit)\n", (int)(sizeof(void *) * 8));
    fflush(stdout);
    if (hold) {
        char c;
        while (read(0, &c, 1) > 0) {}
    }
    return failures ? 1 : 0;
}
