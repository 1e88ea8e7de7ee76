/*
 * The GLES 2.0 baseline of `vchiq bench render`: the hello_triangle2 scene rendered by the
 * system's OpenGL ES 2.0 (Mesa's llvmpipe) through EGL surfaceless.
 *
 * The same scene as the project's client draws (khronos::hello_triangle2): the vertex,
 * Mandelbrot and Julia shaders are read from files the bench writes (the project's own
 * sources), the Mandelbrot set is drawn once into a WIDTH x HEIGHT RGB565 texture through a
 * framebuffer object, then every frame draws the Julia set over it into an RGBA8
 * framebuffer object and reads the whole frame back with glReadPixels (which also waits for
 * the rendering to finish).
 *
 * Built and run by `vchiq bench render`:
 *   cc -O2 bench_render2.c -o bench_render2 -lEGL -lGLESv2
 *   EGL_PLATFORM=surfaceless ./bench_render2 WIDTH HEIGHT FRAMES VS FS_MANDELBROT FS_JULIA \
 *       SCALE OFFSET_X OFFSET_Y R G B A [FRAME1.rgba]
 * Output (stdout): `renderer: <GL_RENDERER>` then `fps: <frames per second>`.
 * With FRAME1.rgba, frame 1's pixels are written there, top row first.
 * Exit status 2 and a message on stderr when EGL or GL cannot be set up.
 */
#include <GLES2/gl2.h>
#define BENCH_NAME "bench_render2"
#include "bench_egl.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* GL_OES_rgb8_rgba8: an RGBA8 renderbuffer, as the window surface. */
#define RGBA8_OES 0x8058

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = 0;
    fclose(f);
    return s;
}

static GLuint shader(GLenum type, const char *path) {
    char *src = slurp(path);
    if (!src) {
        fprintf(stderr, "bench_render2: cannot read %s\n", path);
        return 0;
    }
    GLuint s = glCreateShader(type);
    const char *srcs[1] = {src};
    glShaderSource(s, 1, srcs, NULL);
    glCompileShader(s);
    free(src);
    GLint ok = 0;
    glGetShaderiv(s, GL_COMPILE_STATUS, &ok);
    if (!ok) {
        char log[1024];
        glGetShaderInfoLog(s, sizeof log, NULL, log);
        fprintf(stderr, "bench_render2: %s does not compile: %s\n", path, log);
        return 0;
    }
    return s;
}

static GLuint program(GLuint vs, GLuint fs) {
    GLuint p = glCreateProgram();
    glAttachShader(p, vs);
    glAttachShader(p, fs);
    glLinkProgram(p);
    GLint ok = 0;
    glGetProgramiv(p, GL_LINK_STATUS, &ok);
    return ok ? p : 0;
}

static GLuint target(GLuint texture, GLsizei w, GLsizei h, GLenum internal) {
    GLuint fbo;
    glGenFramebuffers(1, &fbo);
    glBindFramebuffer(GL_FRAMEBUFFER, fbo);
    if (texture) {
        glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, texture, 0);
    } else {
        GLuint rb;
        glGenRenderbuffers(1, &rb);
        glBindRenderbuffer(GL_RENDERBUFFER, rb);
        glRenderbufferStorage(GL_RENDERBUFFER, internal, w, h);
        glFramebufferRenderbuffer(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_RENDERBUFFER, rb);
    }
    return glCheckFramebufferStatus(GL_FRAMEBUFFER) == GL_FRAMEBUFFER_COMPLETE ? fbo : 0;
}

int main(int argc, char **argv) {
    if (argc < 14) {
        fprintf(stderr,
                "usage: %s WIDTH HEIGHT FRAMES VS FS_MANDELBROT FS_JULIA SCALE OX OY R G B A "
                "[FRAME1.rgba]\n",
                argv[0]);
        return 1;
    }
    int w = atoi(argv[1]), h = atoi(argv[2]), frames = atoi(argv[3]);
    float scale = (float)atof(argv[7]), ox = (float)atof(argv[8]), oy = (float)atof(argv[9]);
    float color[4] = {(float)atof(argv[10]), (float)atof(argv[11]), (float)atof(argv[12]),
                      (float)atof(argv[13])};
    if (w <= 0 || h <= 0 || frames <= 0) {
        fprintf(stderr, "bench_render2: bad size or frame count\n");
        return 1;
    }

    EGLDisplay dpy = EGL_NO_DISPLAY;
    EGLContext ctx = EGL_NO_CONTEXT;
    int status = egl_current(2, &dpy, &ctx);
    if (status)
        return status;

    GLuint vs = shader(GL_VERTEX_SHADER, argv[4]);
    GLuint mfs = shader(GL_FRAGMENT_SHADER, argv[5]);
    GLuint jfs = shader(GL_FRAGMENT_SHADER, argv[6]);
    if (!vs || !mfs || !jfs)
        return 2;
    GLuint mandelbrot = program(vs, mfs), julia = program(vs, jfs);
    if (!mandelbrot || !julia)
        return fail("a program does not link");

    static const GLfloat quad[16] = {-1, -1, 1, 1, 1, -1, 1, 1, 1, 1, 1, 1, -1, 1, 1, 1};
    GLuint vbo;
    glGenBuffers(1, &vbo);
    glBindBuffer(GL_ARRAY_BUFFER, vbo);
    glBufferData(GL_ARRAY_BUFFER, sizeof quad, quad, GL_STATIC_DRAW);

    GLuint tex;
    glGenTextures(1, &tex);
    glBindTexture(GL_TEXTURE_2D, tex);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGB, w, h, 0, GL_RGB, GL_UNSIGNED_SHORT_5_6_5, NULL);
    glTexParameterf(GL_TEXTURE_2D, GL_TEXTURE_MIN_FILTER, GL_NEAREST);
    glTexParameterf(GL_TEXTURE_2D, GL_TEXTURE_MAG_FILTER, GL_NEAREST);
    GLuint tex_fbo = target(tex, w, h, 0);
    GLuint screen = target(0, w, h, RGBA8_OES);
    if (!tex_fbo || !screen)
        return fail("framebuffer incomplete");
    glViewport(0, 0, w, h);
    float cx = (float)w / 2.0f, cy = (float)h / 2.0f;

    /* The Mandelbrot set into the texture, once. */
    GLint mv = glGetAttribLocation(mandelbrot, "vertex");
    glBindFramebuffer(GL_FRAMEBUFFER, tex_fbo);
    glUseProgram(mandelbrot);
    glUniform2f(glGetUniformLocation(mandelbrot, "scale"), scale, scale);
    glUniform2f(glGetUniformLocation(mandelbrot, "centre"), cx, cy);
    glVertexAttribPointer((GLuint)mv, 4, GL_FLOAT, GL_FALSE, 16, 0);
    glEnableVertexAttribArray((GLuint)mv);
    glDrawArrays(GL_TRIANGLE_FAN, 0, 4);
    glFinish();

    GLint jv = glGetAttribLocation(julia, "vertex");
    glVertexAttribPointer((GLuint)jv, 4, GL_FLOAT, GL_FALSE, 16, 0);
    glEnableVertexAttribArray((GLuint)jv);
    glUseProgram(julia);
    glUniform4f(glGetUniformLocation(julia, "color"), color[0], color[1], color[2], color[3]);
    glUniform2f(glGetUniformLocation(julia, "scale"), scale, scale);
    glUniform2f(glGetUniformLocation(julia, "offset"), ox, oy);
    glUniform2f(glGetUniformLocation(julia, "centre"), cx, cy);
    glUniform1i(glGetUniformLocation(julia, "tex"), 0);
    glClearColor(0.0f, 1.0f, 1.0f, 1.0f);

    unsigned char *pixels = malloc((size_t)w * (size_t)h * 4);
    if (!pixels)
        return fail("out of memory");
    glBindFramebuffer(GL_FRAMEBUFFER, screen);
    double t0 = 0;
    for (int i = -4; i < frames; i++) {
        if (i == 0)
            t0 = now();
        glClear(GL_COLOR_BUFFER_BIT);
        glDrawArrays(GL_TRIANGLE_FAN, 0, 4);
        glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
        if (i == -4 && argc > 14) {
            if (glGetError() != GL_NO_ERROR)
                return fail("GL error while rendering");
            FILE *out = fopen(argv[14], "wb");
            if (!out)
                return fail("cannot write the frame");
            for (int y = h - 1; y >= 0; y--) /* GL row 0 is the bottom row */
                fwrite(pixels + (size_t)y * (size_t)w * 4, 4, (size_t)w, out);
            fclose(out);
        }
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
