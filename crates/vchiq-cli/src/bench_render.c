/*
 * The baseline of `vchiq bench render`: the hello_triangle scene rendered by the system's
 * OpenGL ES 1.1 (Mesa's llvmpipe) through EGL surfaceless, into a framebuffer object.
 *
 * Same scene as the Rust renderer draws: the 24-vertex GLbyte cube, the same texture
 * coordinates, the same projection, model matrices and per-face extra rotations, three
 * 128x128 RGB textures (read from a file the bench writes: the project's generated images)
 * with NEAREST filtering, back-face culling, no depth buffer, RGBA8888 target. Every frame
 * ends with a full-frame glReadPixels (which also waits for the rendering to finish).
 *
 * Built and run by `vchiq bench render`:
 *   cc -O2 bench_render.c -o bench_render -lEGL -lGLESv1_CM -lm
 *   EGL_PLATFORM=surfaceless ./bench_render WIDTH HEIGHT FRAMES TEXTURES.rgb [FRAME1.rgba]
 * Output (stdout): `renderer: <GL_RENDERER>` then `fps: <frames per second>`.
 * With FRAME1.rgba, frame 1's pixels are written there, top row first.
 * Exit status 2 and a message on stderr when EGL or GL cannot be set up.
 */
#include <GLES/gl.h>
#include <GLES/glext.h>
#define BENCH_NAME "bench_render"
#include "bench_egl.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const GLbyte quadx[24 * 3] = {
    /* front */ -10, -10, 10, 10, -10, 10, -10, 10, 10, 10, 10, 10,
    /* back */ -10, -10, -10, -10, 10, -10, 10, -10, -10, 10, 10, -10,
    /* left */ -10, -10, 10, -10, 10, 10, -10, -10, -10, -10, 10, -10,
    /* right */ 10, -10, -10, 10, 10, -10, 10, -10, 10, 10, 10, 10,
    /* top */ -10, 10, 10, 10, 10, 10, -10, 10, -10, 10, 10, -10,
    /* bottom */ -10, -10, 10, -10, -10, -10, 10, -10, 10, 10, -10, -10,
};

/* Extra rotation before face f: angle, axis. */
static const float face_rot[6][4] = {
    {270, 0, 0, 1}, {90, 0, 0, 1}, {90, 1, 0, 0}, {90, 1, 0, 0}, {270, 0, 1, 0}, {90, 0, 1, 0},
};

static void draw_frame(const GLuint tex[6], unsigned k) {
    /* update_model: 0.5 degrees per frame about x and y, wrapped at 360; z flips 360/0. */
    float ax = (float)fmod(45.0 + 0.5 * k, 360.0);
    float ay = (float)fmod(30.0 + 0.5 * k, 360.0);
    float az = (k % 2 == 1) ? 360.0f : 0.0f;
    glLoadIdentity();
    glTranslatef(0.f, 0.f, -40.f);
    glRotatef(ax, 1.f, 0.f, 0.f);
    glRotatef(ay, 0.f, 1.f, 0.f);
    glRotatef(az, 0.f, 0.f, 1.f);
    /* redraw_scene */
    glClear(GL_COLOR_BUFFER_BIT);
    for (int f = 0; f < 6; f++) {
        glBindTexture(GL_TEXTURE_2D, tex[f]);
        glRotatef(face_rot[f][0], face_rot[f][1], face_rot[f][2], face_rot[f][3]);
        glDrawArrays(GL_TRIANGLE_STRIP, 4 * f, 4);
    }
}

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: %s WIDTH HEIGHT FRAMES TEXTURES.rgb [FRAME1.rgba]\n", argv[0]);
        return 1;
    }
    int w = atoi(argv[1]), h = atoi(argv[2]), frames = atoi(argv[3]);
    if (w <= 0 || h <= 0 || frames <= 0) {
        fprintf(stderr, "bench_render: bad size or frame count\n");
        return 1;
    }
    static unsigned char images[3][128 * 128 * 3];
    FILE *tf = fopen(argv[4], "rb");
    if (!tf || fread(images, 1, sizeof images, tf) != sizeof images) {
        fprintf(stderr, "bench_render: cannot read %zu bytes of textures from %s\n", sizeof images,
                argv[4]);
        return 1;
    }
    fclose(tf);

    EGLDisplay dpy = EGL_NO_DISPLAY;
    EGLContext ctx = EGL_NO_CONTEXT;
    int status = egl_current(1, &dpy, &ctx);
    if (status)
        return status;
    const char *gl_ext = (const char *)glGetString(GL_EXTENSIONS);
    if (!gl_ext || !strstr(gl_ext, "GL_OES_framebuffer_object"))
        return fail("GL_OES_framebuffer_object missing");

    /* Extension entry points (the GLESv1_CM library does not export them). */
#define LOAD(type, name)                                                                   \
    type name = (type)eglGetProcAddress(#name);                                            \
    if (!name)                                                                             \
        return fail(#name " missing");
    LOAD(PFNGLGENFRAMEBUFFERSOESPROC, glGenFramebuffersOES)
    LOAD(PFNGLBINDFRAMEBUFFEROESPROC, glBindFramebufferOES)
    LOAD(PFNGLGENRENDERBUFFERSOESPROC, glGenRenderbuffersOES)
    LOAD(PFNGLBINDRENDERBUFFEROESPROC, glBindRenderbufferOES)
    LOAD(PFNGLRENDERBUFFERSTORAGEOESPROC, glRenderbufferStorageOES)
    LOAD(PFNGLFRAMEBUFFERRENDERBUFFEROESPROC, glFramebufferRenderbufferOES)
    LOAD(PFNGLCHECKFRAMEBUFFERSTATUSOESPROC, glCheckFramebufferStatusOES)

    /* The render target: an RGBA8 renderbuffer, no depth (as the window surface). */
    GLuint fbo, rb;
    glGenFramebuffersOES(1, &fbo);
    glBindFramebufferOES(GL_FRAMEBUFFER_OES, fbo);
    glGenRenderbuffersOES(1, &rb);
    glBindRenderbufferOES(GL_RENDERBUFFER_OES, rb);
    glRenderbufferStorageOES(GL_RENDERBUFFER_OES, GL_RGBA8_OES, w, h);
    glFramebufferRenderbufferOES(GL_FRAMEBUFFER_OES, GL_COLOR_ATTACHMENT0_OES, GL_RENDERBUFFER_OES,
                                 rb);
    if (glCheckFramebufferStatusOES(GL_FRAMEBUFFER_OES) != GL_FRAMEBUFFER_COMPLETE_OES)
        return fail("framebuffer incomplete");

    /* init_ogl, init_model_proj, init_textures (as the demo). */
    glClearColor(0.15f, 0.25f, 0.35f, 1.0f);
    glEnable(GL_CULL_FACE);
    glMatrixMode(GL_MODELVIEW);
    glHint(GL_PERSPECTIVE_CORRECTION_HINT, GL_NICEST);
    glViewport(0, 0, w, h);
    glMatrixMode(GL_PROJECTION);
    glLoadIdentity();
    float hht = (float)tan(45.0 / 2.0 / 180.0 * M_PI);
    float hwd = hht * (float)w / (float)h;
    glFrustumf(-hwd, hwd, -hht, hht, 1.0f, 500.0f);
    glEnableClientState(GL_VERTEX_ARRAY);
    glVertexPointer(3, GL_BYTE, 0, quadx);
    glMatrixMode(GL_MODELVIEW);
    GLuint tex[6];
    glGenTextures(6, tex);
    for (int i = 0; i < 6; i++) {
        glBindTexture(GL_TEXTURE_2D, tex[i]);
        glTexImage2D(GL_TEXTURE_2D, 0, GL_RGB, 128, 128, 0, GL_RGB, GL_UNSIGNED_BYTE,
                     images[i / 2]);
        glTexParameterf(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, (GLfloat)GL_NEAREST);
        glTexParameterf(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, (GLfloat)GL_NEAREST);
    }
    static GLfloat texcoords[24 * 2];
    for (int v = 0; v < 24; v++) {
        texcoords[2 * v] = (v % 4 >= 2) ? 1.f : 0.f;
        texcoords[2 * v + 1] = (v % 2 == 1) ? 1.f : 0.f;
    }
    glTexCoordPointer(2, GL_FLOAT, 0, texcoords);
    glEnableClientState(GL_TEXTURE_COORD_ARRAY);
    glEnable(GL_TEXTURE_2D);

    unsigned char *pixels = malloc((size_t)w * (size_t)h * 4);
    if (!pixels)
        return fail("out of memory");

    /* Frame 1 (also a warm-up): optionally saved for the bench's same-scene check. */
    draw_frame(tex, 1);
    glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
    if (glGetError() != GL_NO_ERROR)
        return fail("GL error while rendering");
    if (argc > 5) {
        FILE *out = fopen(argv[5], "wb");
        if (!out)
            return fail("cannot write the frame");
        for (int y = h - 1; y >= 0; y--) /* GL row 0 is the bottom row */
            fwrite(pixels + (size_t)y * (size_t)w * 4, 4, (size_t)w, out);
        fclose(out);
    }
    for (unsigned k = 2; k <= 4; k++) {
        draw_frame(tex, k);
        glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
    }

    double t0 = now();
    for (int i = 0; i < frames; i++) {
        draw_frame(tex, 5 + (unsigned)i);
        glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
    }
    double dt = now() - t0;
    if (glGetError() != GL_NO_ERROR)
        return fail("GL error while rendering");

    printf("renderer: %s\n", (const char *)glGetString(GL_RENDERER));
    printf("fps: %.3f\n", frames / dt);
    free(pixels);
    eglMakeCurrent(dpy, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(dpy, ctx);
    eglTerminate(dpy);
    return 0;
}
