//! Command ids of the Khronos RPC and the constants of its framing.
//!
//! Ids are those of `interface/khronos/include/khrn_int_ids.h` (the numbers are the wire
//! protocol); the class of each command (spec §5.2, §6.1) is given in its doc line:
//! P plain, R `_RES` (4-byte reply), IC `_IN_CTRL` (inline data), IB `_IN_BULK` (trailing
//! `len`, payload follows), IBR `_IN_BULK_RES`, OC `_OUT_CTRL`, OB `_OUT_BULK`.

/// `LENGTH_SIGNAL_NULL`: the `len` word of an IN_BULK command whose pointer is NULL.
pub const LENGTH_SIGNAL_NULL: u32 = 0xffff_ffff;

// --- EGL (0x4000) ---
/// OC: win, buffers, width, height, colour, depth/stencil, mask, multisample formats,
/// largest_pbuffer, mipmap, config depth bits, config stencil bits, sem, type →
/// `[12, width, height, surface]`.
pub const EGLINTCREATESURFACE: u32 = 0x4000;
/// R: share_ctx, share_type → context id.
pub const EGLINTCREATEGLES11: u32 = 0x4001;
/// R: share_ctx, share_type → context id.
pub const EGLINTCREATEGLES20: u32 = 0x4002;
/// R: surface → ignored int.
pub const EGLINTDESTROYSURFACE: u32 = 0x4004;
/// P: context.
pub const EGLINTDESTROYGL: u32 = 0x4005;
/// P: pid_lo, pid_hi, gltype, gl_ctx, gl_draw, gl_read, vg_ctx, vg_surf (the MC record).
pub const EGLINTMAKECURRENT: u32 = 0x4008;
/// P (+flush): surface, width, height, window handle, preserve, position.
pub const EGLINTSWAPBUFFERS: u32 = 0x400a;
/// P (+flush): flush_gl, flush_vg.
pub const EGLINTFLUSH: u32 = 0x400c;
/// R: no arguments → ignored int.
pub const KHRNMISCTRYUNLOAD: u32 = 0x6000;

// --- GL common (0x7000) ---
/// P target, texture.
pub const GLBINDTEXTURE: u32 = 0x7003;
/// P mask.
pub const GLCLEAR: u32 = 0x7006;
/// P r, g, b, a.
pub const GLCLEARCOLOR: u32 = 0x7007;
/// P mode.
pub const GLCULLFACE: u32 = 0x7010;
/// IB n, len.
pub const GLDELETETEXTURES: u32 = 0x7012;
/// P cap.
pub const GLDISABLE: u32 = 0x7016;
/// IC mode, count, type, indices offset + cache info.
pub const GLINTDRAWELEMENTS: u32 = 0x7018;
/// P cap.
pub const GLENABLE: u32 = 0x701a;
/// R.
pub const GLFINISH: u32 = 0x701b;
/// P (+flush).
pub const GLFLUSH: u32 = 0x701c;
/// P mode.
pub const GLFRONTFACE: u32 = 0x701d;
/// OB n.
pub const GLGENTEXTURES: u32 = 0x701f;
/// R.
pub const GLGETERROR: u32 = 0x7022;
/// P target, mode.
pub const GLHINT: u32 = 0x7027;
/// P x, y, w, h.
pub const GLSCISSOR: u32 = 0x7030;
/// IBR target, level, ifmt, w, h, border, fmt, type, align, len.
pub const GLTEXIMAGE2D: u32 = 0x7031;
/// P target, pname, param (float).
pub const GLTEXPARAMETERF: u32 = 0x7032;
/// P target, pname, param.
pub const GLTEXPARAMETERI: u32 = 0x7033;
/// IB target, level, x, y, w, rows, fmt, type, align, len.
pub const GLTEXSUBIMAGE2D: u32 = 0x7034;
/// P x, y, w, h.
pub const GLVIEWPORT: u32 = 0x7035;
/// P offset.
pub const GLINTCACHECREATE: u32 = 0x7037;
/// P offset.
pub const GLINTCACHEDELETE: u32 = 0x7038;
/// IC offset, len + len bytes.
pub const GLINTCACHEDATA: u32 = 0x703a;
/// R → bool.
pub const GLINTCACHEGROW: u32 = 0x703b;
/// P api, index, size, type, normalized, stride, ptr.
pub const GLINTATTRIBPOINTER: u32 = 0x7117;
/// P api, index, enabled.
pub const GLINTATTRIBENABLE: u32 = 0x7119;

// --- GL common, buffers and framebuffers ---
/// P texture unit (GL_TEXTURE0 + i).
pub const GLACTIVETEXTURE: u32 = 0x7001;
/// P target, buffer.
pub const GLBINDBUFFER: u32 = 0x7002;
/// IB target, size, usage, len (`0xffffffff`: no data; the data follows as `GLBUFFERSUBDATA`).
pub const GLBUFFERDATA: u32 = 0x7004;
/// IB target, offset, size, len.
pub const GLBUFFERSUBDATA: u32 = 0x7005;
/// P depth (float).
pub const GLCLEARDEPTHF: u32 = 0x7008;
/// P r, g, b, a.
pub const GLCOLORMASK: u32 = 0x700b;
/// IB n, len.
pub const GLDELETEBUFFERS: u32 = 0x7011;
/// P func.
pub const GLDEPTHFUNC: u32 = 0x7013;
/// P flag.
pub const GLDEPTHMASK: u32 = 0x7014;
/// OB n.
pub const GLGENBUFFERS: u32 = 0x701e;
/// P src_rgb, dst_rgb, src_alpha, dst_alpha.
pub const GLBLENDFUNCSEPARATE: u32 = 0x708d;
/// P target, renderbuffer.
pub const GLBINDRENDERBUFFER: u32 = 0x7102;
/// IB n, len.
pub const GLDELETERENDERBUFFERS: u32 = 0x7103;
/// OB n.
pub const GLGENRENDERBUFFERS: u32 = 0x7104;
/// P target, internalformat, width, height.
pub const GLRENDERBUFFERSTORAGE: u32 = 0x7105;
/// P target, framebuffer.
pub const GLBINDFRAMEBUFFER: u32 = 0x7108;
/// IB n, len.
pub const GLDELETEFRAMEBUFFERS: u32 = 0x7109;
/// OB n.
pub const GLGENFRAMEBUFFERS: u32 = 0x710a;
/// R target → status.
pub const GLCHECKFRAMEBUFFERSTATUS: u32 = 0x710b;
/// P target, attachment, textarget, texture, level.
pub const GLFRAMEBUFFERTEXTURE2D: u32 = 0x710c;
/// P target, attachment, renderbuffertarget, renderbuffer.
pub const GLFRAMEBUFFERRENDERBUFFER: u32 = 0x710d;
// --- GL ES 2.0 (0x2000) ---
/// P program, shader.
pub const GLATTACHSHADER_20: u32 = 0x2001;
/// P shader.
pub const GLCOMPILESHADER_20: u32 = 0x200a;
/// R → program name.
pub const GLCREATEPROGRAM_20: u32 = 0x200b;
/// R type → shader name.
pub const GLCREATESHADER_20: u32 = 0x200c;
/// P program.
pub const GLDELETEPROGRAM_20: u32 = 0x200e;
/// P shader.
pub const GLDELETESHADER_20: u32 = 0x2010;
/// P program, shader.
pub const GLDETACHSHADER_20: u32 = 0x2011;
/// IBR program, len + the name with its NUL → location (−1: none).
pub const GLGETATTRIBLOCATION_20: u32 = 0x2017;
/// IBR program, len + the name with its NUL → location (−1: none).
pub const GLGETUNIFORMLOCATION_20: u32 = 0x2026;
/// P program.
pub const GLLINKPROGRAM_20: u32 = 0x202c;
/// shader, count, total, has_lengths, then payloads (see `Gl::shader_source`).
pub const GLSHADERSOURCE_20: u32 = 0x2030;
/// P location, x.
pub const GLUNIFORM1F_20: u32 = 0x2035;
/// P location, x, y.
pub const GLUNIFORM2F_20: u32 = 0x2036;
/// P location, x, y, z.
pub const GLUNIFORM3F_20: u32 = 0x2037;
/// P location, x, y, z, w.
pub const GLUNIFORM4F_20: u32 = 0x2038;
/// P location, x.
pub const GLUNIFORM1I_20: u32 = 0x203a;
/// P location, x, y.
pub const GLUNIFORM2I_20: u32 = 0x203b;
/// P location, x, y, z.
pub const GLUNIFORM3I_20: u32 = 0x203c;
/// P location, x, y, z, w.
pub const GLUNIFORM4I_20: u32 = 0x203d;
/// P program.
pub const GLUSEPROGRAM_20: u32 = 0x204a;
/// P program.
pub const GLVALIDATEPROGRAM_20: u32 = 0x204b;
// --- GL ES 1.1 (0x1000) ---
/// P l, r, b, t, n, f.
pub const GLFRUSTUMF_11: u32 = 0x100f;
/// P.
pub const GLLOADIDENTITY_11: u32 = 0x1036;
/// IC 64 bytes.
pub const GLLOADMATRIXF_11: u32 = 0x1037;
/// P mode.
pub const GLMATRIXMODE_11: u32 = 0x103f;
/// IC 64 bytes.
pub const GLMULTMATRIXF_11: u32 = 0x1040;
/// P l, r, b, t, n, f.
pub const GLORTHOF_11: u32 = 0x1043;
/// P.
pub const GLPOPMATRIX_11: u32 = 0x104c;
/// P.
pub const GLPUSHMATRIX_11: u32 = 0x104d;
/// P angle, x, y, z.
pub const GLROTATEF_11: u32 = 0x104e;
/// P x, y, z.
pub const GLSCALEF_11: u32 = 0x1051;
/// P x, y, z.
pub const GLTRANSLATEF_11: u32 = 0x105f;
/// P r, g, b, a (clamped to 0..1).
pub const GLINTCOLOR_11: u32 = 0x1064;

// --- KHAN commands (`ASYNC_COMMAND_*`) ---
/// KHAN: acquire the named semaphore.
pub const ASYNC_COMMAND_WAIT: u32 = 0;
/// KHAN: release the named semaphore.
pub const ASYNC_COMMAND_POST: u32 = 1;
/// KHAN: destroy (ignored by the Linux client).
pub const ASYNC_COMMAND_DESTROY: u32 = 2;

/// `GLINTATTRIBPOINTER`/`GLINTATTRIBENABLE` api word for OpenGL ES 1.1.
pub const ATTRIB_API_GL11: u32 = 1;
/// `GLINTATTRIBPOINTER`/`GLINTATTRIBENABLE` api word for OpenGL ES 2.0.
pub const ATTRIB_API_GL20: u32 = 2;

/// A readable name for a command id (for logs and test decoders).
pub fn name(id: u32) -> &'static str {
    match id {
        EGLINTCREATESURFACE => "EGLINTCREATESURFACE",
        EGLINTCREATEGLES11 => "EGLINTCREATEGLES11",
        EGLINTCREATEGLES20 => "EGLINTCREATEGLES20",
        EGLINTDESTROYSURFACE => "EGLINTDESTROYSURFACE",
        EGLINTDESTROYGL => "EGLINTDESTROYGL",
        EGLINTMAKECURRENT => "EGLINTMAKECURRENT",
        EGLINTSWAPBUFFERS => "EGLINTSWAPBUFFERS",
        EGLINTFLUSH => "EGLINTFLUSH",
        KHRNMISCTRYUNLOAD => "KHRNMISCTRYUNLOAD",
        GLBINDTEXTURE => "GLBINDTEXTURE",
        GLCLEAR => "GLCLEAR",
        GLCLEARCOLOR => "GLCLEARCOLOR",
        GLCULLFACE => "GLCULLFACE",
        GLDELETETEXTURES => "GLDELETETEXTURES",
        GLDISABLE => "GLDISABLE",
        GLINTDRAWELEMENTS => "GLINTDRAWELEMENTS",
        GLENABLE => "GLENABLE",
        GLFINISH => "GLFINISH",
        GLFLUSH => "GLFLUSH",
        GLFRONTFACE => "GLFRONTFACE",
        GLGENTEXTURES => "GLGENTEXTURES",
        GLGETERROR => "GLGETERROR",
        GLHINT => "GLHINT",
        GLSCISSOR => "GLSCISSOR",
        GLTEXIMAGE2D => "GLTEXIMAGE2D",
        GLTEXPARAMETERF => "GLTEXPARAMETERF",
        GLTEXPARAMETERI => "GLTEXPARAMETERI",
        GLTEXSUBIMAGE2D => "GLTEXSUBIMAGE2D",
        GLVIEWPORT => "GLVIEWPORT",
        GLINTCACHECREATE => "GLINTCACHECREATE",
        GLINTCACHEDELETE => "GLINTCACHEDELETE",
        GLINTCACHEDATA => "GLINTCACHEDATA",
        GLINTCACHEGROW => "GLINTCACHEGROW",
        GLINTATTRIBPOINTER => "GLINTATTRIBPOINTER",
        GLINTATTRIBENABLE => "GLINTATTRIBENABLE",
        GLFRUSTUMF_11 => "GLFRUSTUMF_11",
        GLLOADIDENTITY_11 => "GLLOADIDENTITY_11",
        GLLOADMATRIXF_11 => "GLLOADMATRIXF_11",
        GLMATRIXMODE_11 => "GLMATRIXMODE_11",
        GLMULTMATRIXF_11 => "GLMULTMATRIXF_11",
        GLORTHOF_11 => "GLORTHOF_11",
        GLPOPMATRIX_11 => "GLPOPMATRIX_11",
        GLPUSHMATRIX_11 => "GLPUSHMATRIX_11",
        GLROTATEF_11 => "GLROTATEF_11",
        GLSCALEF_11 => "GLSCALEF_11",
        GLTRANSLATEF_11 => "GLTRANSLATEF_11",
        GLINTCOLOR_11 => "GLINTCOLOR_11",
        GLACTIVETEXTURE => "GLACTIVETEXTURE",
        GLBINDBUFFER => "GLBINDBUFFER",
        GLBUFFERDATA => "GLBUFFERDATA",
        GLBUFFERSUBDATA => "GLBUFFERSUBDATA",
        GLCLEARDEPTHF => "GLCLEARDEPTHF",
        GLCOLORMASK => "GLCOLORMASK",
        GLDELETEBUFFERS => "GLDELETEBUFFERS",
        GLDEPTHFUNC => "GLDEPTHFUNC",
        GLDEPTHMASK => "GLDEPTHMASK",
        GLGENBUFFERS => "GLGENBUFFERS",
        GLBLENDFUNCSEPARATE => "GLBLENDFUNCSEPARATE",
        GLBINDRENDERBUFFER => "GLBINDRENDERBUFFER",
        GLDELETERENDERBUFFERS => "GLDELETERENDERBUFFERS",
        GLGENRENDERBUFFERS => "GLGENRENDERBUFFERS",
        GLRENDERBUFFERSTORAGE => "GLRENDERBUFFERSTORAGE",
        GLBINDFRAMEBUFFER => "GLBINDFRAMEBUFFER",
        GLDELETEFRAMEBUFFERS => "GLDELETEFRAMEBUFFERS",
        GLGENFRAMEBUFFERS => "GLGENFRAMEBUFFERS",
        GLCHECKFRAMEBUFFERSTATUS => "GLCHECKFRAMEBUFFERSTATUS",
        GLFRAMEBUFFERTEXTURE2D => "GLFRAMEBUFFERTEXTURE2D",
        GLFRAMEBUFFERRENDERBUFFER => "GLFRAMEBUFFERRENDERBUFFER",
        GLATTACHSHADER_20 => "GLATTACHSHADER_20",
        GLCOMPILESHADER_20 => "GLCOMPILESHADER_20",
        GLCREATEPROGRAM_20 => "GLCREATEPROGRAM_20",
        GLCREATESHADER_20 => "GLCREATESHADER_20",
        GLDELETEPROGRAM_20 => "GLDELETEPROGRAM_20",
        GLDELETESHADER_20 => "GLDELETESHADER_20",
        GLDETACHSHADER_20 => "GLDETACHSHADER_20",
        GLGETATTRIBLOCATION_20 => "GLGETATTRIBLOCATION_20",
        GLGETUNIFORMLOCATION_20 => "GLGETUNIFORMLOCATION_20",
        GLLINKPROGRAM_20 => "GLLINKPROGRAM_20",
        GLSHADERSOURCE_20 => "GLSHADERSOURCE_20",
        GLUNIFORM1F_20 => "GLUNIFORM1F_20",
        GLUNIFORM2F_20 => "GLUNIFORM2F_20",
        GLUNIFORM3F_20 => "GLUNIFORM3F_20",
        GLUNIFORM4F_20 => "GLUNIFORM4F_20",
        GLUNIFORM1I_20 => "GLUNIFORM1I_20",
        GLUNIFORM2I_20 => "GLUNIFORM2I_20",
        GLUNIFORM3I_20 => "GLUNIFORM3I_20",
        GLUNIFORM4I_20 => "GLUNIFORM4I_20",
        GLUSEPROGRAM_20 => "GLUSEPROGRAM_20",
        GLVALIDATEPROGRAM_20 => "GLVALIDATEPROGRAM_20",
        _ => "UNKNOWN",
    }
}

/// Split exactly `N` little-endian words out of `data`; `None` unless `data` is `4 * N` bytes.
pub(crate) fn words<const N: usize>(data: &[u8]) -> Option<[u32; N]> {
    if data.len() != 4 * N {
        return None;
    }
    let mut out = [0u32; N];
    for (w, chunk) in out.iter_mut().zip(data.chunks_exact(4)) {
        *w = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
    }
    Some(out)
}
