/*
 * What the render baselines of `vchiq bench render` share: an OpenGL ES context current
 * without a surface on Mesa's EGL surfaceless platform, the clock, and the failure report.
 * Include after the GL header (fail() reads glGetError).
 */
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int fail(const char *what) {
    fprintf(stderr, "%s: %s (EGL error 0x%x, GL error 0x%x)\n", BENCH_NAME, what,
            (unsigned)eglGetError(), (unsigned)glGetError());
    return 2;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Makes an OpenGL ES `version` context current without a surface (rendering goes to
 * framebuffer objects). Returns 0, or fail()'s status. */
static int egl_current(int version, EGLDisplay *dpy_out, EGLContext *ctx_out) {
    EGLDisplay dpy = EGL_NO_DISPLAY;
    const char *client_ext = eglQueryString(EGL_NO_DISPLAY, EGL_EXTENSIONS);
    PFNEGLGETPLATFORMDISPLAYEXTPROC get_platform_display =
        (PFNEGLGETPLATFORMDISPLAYEXTPROC)eglGetProcAddress("eglGetPlatformDisplayEXT");
    if (client_ext && strstr(client_ext, "EGL_MESA_platform_surfaceless") && get_platform_display)
        dpy = get_platform_display(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL);
    if (dpy == EGL_NO_DISPLAY)
        dpy = eglGetDisplay(EGL_DEFAULT_DISPLAY);
    if (dpy == EGL_NO_DISPLAY)
        return fail("no EGL display");
    EGLint major, minor;
    if (!eglInitialize(dpy, &major, &minor))
        return fail("eglInitialize failed");
    if (!eglBindAPI(EGL_OPENGL_ES_API))
        return fail("eglBindAPI(EGL_OPENGL_ES_API) failed");
    const EGLint cfg_attrs[] = {EGL_SURFACE_TYPE, EGL_PBUFFER_BIT, EGL_RENDERABLE_TYPE,
                                version >= 2 ? EGL_OPENGL_ES2_BIT : EGL_OPENGL_ES_BIT, EGL_NONE};
    EGLConfig cfg;
    EGLint n = 0;
    if (!eglChooseConfig(dpy, cfg_attrs, &cfg, 1, &n) || n < 1)
        return fail("no EGL config for this OpenGL ES version");
    const EGLint ctx_attrs[] = {EGL_CONTEXT_CLIENT_VERSION, version, EGL_NONE};
    EGLContext ctx = eglCreateContext(dpy, cfg, EGL_NO_CONTEXT, ctx_attrs);
    if (ctx == EGL_NO_CONTEXT)
        return fail("eglCreateContext failed");
    if (!eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, ctx))
        return fail("eglMakeCurrent without a surface failed (EGL_KHR_surfaceless_context)");
    *dpy_out = dpy;
    *ctx_out = ctx;
    return 0;
}
