//! OpenGL ES 2.0-only commands: shader and program objects, compiled and linked with
//! [`vc_glsl`], their getters, uniforms and attribute bindings.
//!
//! `glShaderSource` has its own multi-payload framing (`[shader, count, total,
//! has_lengths]`, then optionally the `count·4`-byte length array, then for each string an
//! optional 4-byte length and the string itself); it is followed payload by payload with
//! the [`ShaderSource`] state.

use super::gl::glenum::{INVALID_ENUM, INVALID_OPERATION, INVALID_VALUE};
use super::glsl::{FRAGMENT_SHADER, ProgramObject, ShaderObject, UniformCall, VERTEX_SHADER};
use super::state::{Context, LocationKind, Object20, PayloadAction, ShaderSource};
use super::wire::{Words, bytes_to_words};
use super::{Channel, Flow, KhrnError, KhrnHost, KhrnServer, ids};

/// Most strings accepted in one `glShaderSource`.
const MAX_SHADER_STRINGS: u32 = 1 << 16;
/// Source bytes kept per shader (framing continues past it; the rest is dropped).
const MAX_SHADER_SOURCE: usize = 1 << 20;
/// Most elements one `glUniform*v` may carry (the client's 1 MiB workspace).
const MAX_UNIFORM_WORDS: u32 = 1 << 18;

// glGetShaderiv / glGetProgramiv names (GLES2/gl2.h).
const SHADER_TYPE: u32 = 0x8b4f;
const DELETE_STATUS: u32 = 0x8b80;
const COMPILE_STATUS: u32 = 0x8b81;
const LINK_STATUS: u32 = 0x8b82;
const VALIDATE_STATUS: u32 = 0x8b83;
const INFO_LOG_LENGTH: u32 = 0x8b84;
const ATTACHED_SHADERS: u32 = 0x8b85;
const ACTIVE_UNIFORMS: u32 = 0x8b86;
const ACTIVE_UNIFORM_MAX_LENGTH: u32 = 0x8b87;
const SHADER_SOURCE_LENGTH: u32 = 0x8b88;
const ACTIVE_ATTRIBUTES: u32 = 0x8b89;
const ACTIVE_ATTRIBUTE_MAX_LENGTH: u32 = 0x8b8a;
const LOW_FLOAT: u32 = 0x8df0;
const HIGH_INT: u32 = 0x8df5;

/// Which text a `glGet*InfoLog` / `glGetShaderSource` asks for.
#[derive(Clone, Copy)]
enum Text {
    ShaderLog,
    ProgramLog,
    ShaderSource,
}

impl KhrnServer {
    pub(super) fn gl20_command(
        &mut self,
        channel: Channel,
        id: u32,
        w: &mut Words<'_>,
        host: &mut dyn KhrnHost,
    ) -> Result<Flow, KhrnError> {
        match id {
            ids::GLCREATESHADER_20 => {
                let kind = w.u32(id)?;
                let name = match kind {
                    VERTEX_SHADER | FRAGMENT_SHADER => {
                        self.create_object(channel, Object20::Shader(ShaderObject::new(kind)))
                    }
                    _ => {
                        self.set_error(channel, INVALID_ENUM);
                        0
                    }
                };
                self.reply_u32(host, channel, name);
            }
            ids::GLCREATEPROGRAM_20 => {
                let name = self.create_object(channel, Object20::Program(ProgramObject::default()));
                self.reply_u32(host, channel, name);
            }
            ids::GLDELETESHADER_20 | ids::GLDELETEPROGRAM_20 => {
                let name = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    delete_object(c, name, id == ids::GLDELETESHADER_20);
                }
            }
            ids::GLCOMPILESHADER_20 => {
                let name = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    match shader_mut(c, name) {
                        Ok(s) => s.compile(),
                        Err(e) => c.set_error(e),
                    }
                }
            }
            ids::GLATTACHSHADER_20 | ids::GLDETACHSHADER_20 => {
                let [program, shader] = w.array::<2>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    let r = if id == ids::GLATTACHSHADER_20 {
                        attach(c, program, shader)
                    } else {
                        detach(c, program, shader)
                    };
                    if let Err(e) = r {
                        c.set_error(e);
                    }
                }
            }
            ids::GLBINDATTRIBLOCATION_20 => {
                let [program, index, len] = w.array::<3>(id)?;
                if len != ids::LENGTH_SIGNAL_NULL && len != 0 {
                    let action = PayloadAction::BindAttribLocation { program, index };
                    return self.expect_payload(channel, id, len, action, host);
                }
            }
            ids::GLLINKPROGRAM_20 => {
                let name = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    if let Err(e) = link(c, name) {
                        c.set_error(e);
                    }
                }
            }
            ids::GLUSEPROGRAM_20 => {
                let name = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    if let Err(e) = use_program(c, name) {
                        c.set_error(e);
                    }
                }
            }
            ids::GLVALIDATEPROGRAM_20 => {
                let name = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    match program_mut(c, name) {
                        Ok(p) => p.validate_status = p.link_status,
                        Err(e) => c.set_error(e),
                    }
                }
            }
            ids::GLUNIFORM1F_20..=ids::GLUNIFORM4F_20
            | ids::GLUNIFORM1I_20..=ids::GLUNIFORM4I_20 => {
                let location = w.i32(id)?;
                let float = id <= ids::GLUNIFORM4F_20;
                let n = (id
                    - if float {
                        ids::GLUNIFORM1F_20
                    } else {
                        ids::GLUNIFORM1I_20
                    }) as usize
                    + 1;
                let mut values = [0u32; 4];
                for v in values.iter_mut().take(n) {
                    *v = w.u32(id)?;
                }
                let call = if float {
                    UniformCall::Float(n)
                } else {
                    UniformCall::Int(n)
                };
                self.uniform(channel, location, call, 1, &values[..n]);
            }
            ids::GLUNIFORM1FV_20..=ids::GLUNIFORM4IV_20
            | ids::GLUNIFORMMATRIX2FV_20..=ids::GLUNIFORMMATRIX4FV_20 => {
                let location = w.i32(id)?;
                let count = w.i32(id)?;
                let call = match id {
                    ids::GLUNIFORM1FV_20..=ids::GLUNIFORM4FV_20 => {
                        UniformCall::Float((id - ids::GLUNIFORM1FV_20) as usize + 1)
                    }
                    ids::GLUNIFORM1IV_20..=ids::GLUNIFORM4IV_20 => {
                        UniformCall::Int((id - ids::GLUNIFORM1IV_20) as usize + 1)
                    }
                    _ => {
                        let transpose = w.u32(id)?;
                        if transpose != 0 {
                            // GL ES 2.0: transpose must be GL_FALSE.
                            self.set_error(channel, INVALID_VALUE);
                        }
                        UniformCall::Matrix((id - ids::GLUNIFORMMATRIX2FV_20) as usize + 2)
                    }
                };
                let len = w.u32(id)?;
                if len > 4 * MAX_UNIFORM_WORDS {
                    return Err(KhrnError::PayloadTooLarge {
                        name: ids::command_name(id),
                        len,
                    });
                }
                let data = w.inline(len, id)?;
                let values: Vec<u32> = bytes_to_words(data).collect();
                if count < 0 || values.len() < count as usize * call.words() {
                    self.set_error(channel, INVALID_VALUE);
                } else {
                    self.uniform(channel, location, call, count as u32, &values);
                }
            }
            ids::GLGETATTRIBLOCATION_20 | ids::GLGETUNIFORMLOCATION_20 => {
                let [program, len] = w.array::<2>(id)?;
                let kind = if id == ids::GLGETATTRIBLOCATION_20 {
                    LocationKind::Attrib
                } else {
                    LocationKind::Uniform
                };
                if len == ids::LENGTH_SIGNAL_NULL || len == 0 {
                    self.reply_u32(host, channel, u32::MAX);
                } else {
                    let action = PayloadAction::Location { kind, program };
                    return self.expect_payload(channel, id, len, action, host);
                }
            }
            ids::GLGETSHADERIV_20 | ids::GLGETPROGRAMIV_20 => {
                let [name, pname] = w.array::<2>(id)?;
                let value = self.context_mut(channel).map(|c| {
                    let r = if id == ids::GLGETSHADERIV_20 {
                        shader_iv(c, name, pname)
                    } else {
                        program_iv(c, name, pname)
                    };
                    r.inspect_err(|&e| c.set_error(e)).ok()
                });
                match value.flatten() {
                    Some(v) => self.reply_out_ctrl(host, channel, &[v as u32]),
                    None => self.reply_out_ctrl(host, channel, &[]),
                }
            }
            ids::GLGETSHADERINFOLOG_20
            | ids::GLGETPROGRAMINFOLOG_20
            | ids::GLGETSHADERSOURCE_20 => {
                let [name, bufsize] = w.array::<2>(id)?;
                let which = match id {
                    ids::GLGETSHADERINFOLOG_20 => Text::ShaderLog,
                    ids::GLGETPROGRAMINFOLOG_20 => Text::ProgramLog,
                    _ => Text::ShaderSource,
                };
                let text = self
                    .context_mut(channel)
                    .map(|c| {
                        object_text(c, name, which)
                            .inspect_err(|&e| c.set_error(e))
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                self.reply_text(host, channel, &[], &text, bufsize as i32);
            }
            ids::GLGETACTIVEATTRIB_20 | ids::GLGETACTIVEUNIFORM_20 => {
                let [program, index, bufsize] = w.array::<3>(id)?;
                let active = self.context_mut(channel).map(|c| {
                    active_variable(c, program, index, id == ids::GLGETACTIVEATTRIB_20)
                        .inspect_err(|&e| c.set_error(e))
                        .ok()
                });
                let (size, ty, name) = active.flatten().unwrap_or_default();
                self.reply_text(host, channel, &[size, ty], name.as_bytes(), bufsize as i32);
            }
            ids::GLGETATTACHEDSHADERS_20 => {
                let [program, maxcount] = w.array::<2>(id)?;
                let shaders = self
                    .context_mut(channel)
                    .map(|c| match program_mut(c, program) {
                        Ok(p) => p.attached.clone(),
                        Err(e) => {
                            c.set_error(e);
                            Vec::new()
                        }
                    })
                    .unwrap_or_default();
                let n = shaders.len().min(maxcount.min(2) as usize);
                let mut out = [0u32; 3];
                out[0] = n as u32;
                out[1..1 + n].copy_from_slice(&shaders[..n]);
                self.reply_out_ctrl(host, channel, &out);
            }
            ids::GLGETUNIFORMFV_20 | ids::GLGETUNIFORMIV_20 => {
                let [program, location] = w.array::<2>(id)?;
                let float = id == ids::GLGETUNIFORMFV_20;
                let values = self
                    .context_mut(channel)
                    .map(|c| {
                        uniform_value(c, program, location as i32, float)
                            .inspect_err(|&e| c.set_error(e))
                            .unwrap_or_default()
                    })
                    .unwrap_or_default();
                self.reply_out_ctrl(host, channel, &values);
            }
            ids::GLISPROGRAM_20 | ids::GLISSHADER_20 => {
                let name = w.u32(id)?;
                let shader = id == ids::GLISSHADER_20;
                let is = self.context_mut(channel).is_some_and(|c| {
                    matches!(
                        (c.objects.get(&name), shader),
                        (Some(Object20::Shader(_)), true) | (Some(Object20::Program(_)), false)
                    )
                });
                self.reply_u32(host, channel, u32::from(is));
            }
            ids::GLGETSHADERPRECISIONFORMAT_20 => {
                let [_shader, precision] = w.array::<2>(id)?;
                // Every precision is computed in IEEE single precision: floats have
                // range 2^127 and 23 bits; integers are exact to 2^24.
                let out = match precision {
                    LOW_FLOAT..=0x8df2 => [127, 127, 23],
                    0x8df3..=HIGH_INT => [24, 24, 0],
                    _ => {
                        self.set_error(channel, INVALID_ENUM);
                        [0, 0, 0]
                    }
                };
                self.reply_out_ctrl(host, channel, &out);
            }
            ids::GLBLENDCOLOR_20 => {
                let [r, g, b, a] = w.floats::<4>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    c.gl.blend_color(r, g, b, a);
                }
            }
            ids::GLBLENDEQUATIONSEPARATE_20 => {
                let [rgb, alpha] = w.array::<2>(id)?;
                if let Some(c) = self.context_mut(channel) {
                    c.gl.blend_equation_separate(rgb, alpha);
                }
            }
            ids::GLPOINTSIZE_20 => {
                w.u32(id)?;
            }
            ids::GLSHADERSOURCE_20 => {
                let [shader, count, _total, has_lengths] = w.array::<4>(id)?;
                if count > MAX_SHADER_STRINGS {
                    self.set_error(channel, INVALID_VALUE);
                    // The client sends the strings regardless; they cannot be framed.
                    host.log(&format!(
                        "khrn: glShaderSource with {count} strings refused"
                    ));
                    return Ok(Flow::Continue);
                }
                let state = ShaderSource {
                    shader,
                    count,
                    lengths: None,
                    index: 0,
                    source: Vec::new(),
                };
                if has_lengths != 0 && count > 0 {
                    let action = PayloadAction::ShaderLengths(state);
                    return self.expect_payload(channel, id, 4 * count, action, host);
                }
                return self.next_shader_string(channel, state, host);
            }
            _ => return Ok(Flow::Unknown),
        }
        Ok(Flow::Continue)
    }

    fn set_error(&mut self, channel: Channel, error: u32) {
        if let Some(c) = self.context_mut(channel) {
            c.set_error(error);
        }
    }

    fn create_object(&mut self, channel: Channel, object: Object20) -> u32 {
        let Some(c) = self.context_mut(channel) else {
            return 0;
        };
        if c.objects.len() >= super::state::MAX_NAMES {
            c.set_error(super::gl::glenum::OUT_OF_MEMORY);
            return 0;
        }
        loop {
            c.next_object = c.next_object.wrapping_add(1);
            if c.next_object != 0 && !c.objects.contains_key(&c.next_object) {
                c.objects.insert(c.next_object, object);
                return c.next_object;
            }
        }
    }

    fn uniform(
        &mut self,
        channel: Channel,
        location: i32,
        call: UniformCall,
        count: u32,
        values: &[u32],
    ) {
        let Some(c) = self.context_mut(channel) else {
            return;
        };
        let current = c.current_program;
        let r = match c.objects.get_mut(&current) {
            Some(Object20::Program(p)) if current != 0 => {
                p.set_uniform(location, call, count, values)
            }
            _ => Err(INVALID_OPERATION),
        };
        if let Err(e) = r {
            c.set_error(e);
        }
    }

    /// An `[ctrl words…, length]` out-ctrl answer, then the text (at most `bufsize − 1`
    /// bytes) and its NUL as out-bulk data, as the `glGet*InfoLog`-style calls expect.
    fn reply_text(
        &mut self,
        host: &mut dyn KhrnHost,
        channel: Channel,
        ctrl: &[u32],
        text: &[u8],
        bufsize: i32,
    ) {
        let room = usize::try_from(bufsize).unwrap_or(0).saturating_sub(1);
        let n = text.len().min(room);
        let mut words = vec![n as u32];
        words.extend_from_slice(ctrl);
        self.reply_out_ctrl(host, channel, &words);
        let mut data = text[..n].to_vec();
        data.push(0);
        self.reply_out_bulk(host, channel, data);
    }

    /// `glBindAttribLocation`'s name payload.
    pub(super) fn bind_attrib_location(
        &mut self,
        channel: Channel,
        program: u32,
        index: u32,
        name: &[u8],
    ) {
        let Some(c) = self.context_mut(channel) else {
            return;
        };
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        let name = String::from_utf8_lossy(name).into_owned();
        if index as usize >= vc_gles::program::MAX_VERTEX_ATTRIBS {
            return c.set_error(INVALID_VALUE);
        }
        if name.starts_with("gl_") {
            return c.set_error(INVALID_OPERATION);
        }
        match program_mut(c, program) {
            Ok(p) => {
                p.bindings.retain(|(n, _)| *n != name);
                p.bindings.push((name, index));
            }
            Err(e) => c.set_error(e),
        }
    }

    /// `glGetAttribLocation` / `glGetUniformLocation`: -1 unless `program` is linked and
    /// has an active variable of that name.
    pub(super) fn location(
        &mut self,
        channel: Channel,
        kind: LocationKind,
        program: u32,
        name: &[u8],
    ) -> i32 {
        let Some(c) = self.context_mut(channel) else {
            return -1;
        };
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        let name = String::from_utf8_lossy(name);
        let p = match program_mut(c, program) {
            Ok(p) => p,
            Err(e) => {
                c.set_error(e);
                return -1;
            }
        };
        let Some(linked) = &p.linked else {
            c.set_error(INVALID_OPERATION);
            return -1;
        };
        match kind {
            LocationKind::Attrib => linked.attribute_location(&name),
            LocationKind::Uniform => linked.uniform_location(&name),
        }
    }

    /// Announce the next payload of a `glShaderSource`, or finish it.
    fn next_shader_string(
        &mut self,
        channel: Channel,
        mut state: ShaderSource,
        host: &mut dyn KhrnHost,
    ) -> Result<Flow, KhrnError> {
        let id = ids::GLSHADERSOURCE_20;
        while state.index < state.count {
            let known = state
                .lengths
                .as_ref()
                .and_then(|l| l.get(state.index as usize))
                .copied()
                .filter(|&len| len >= 0);
            match known {
                // An empty string has no payload.
                Some(0) => state.index += 1,
                Some(len) => {
                    let action = PayloadAction::ShaderString(state);
                    return self.expect_payload(channel, id, len as u32, action, host);
                }
                None => {
                    let action = PayloadAction::ShaderStringLength(state);
                    return self.expect_payload(channel, id, 4, action, host);
                }
            }
        }
        if let Some(c) = self.context_mut(channel) {
            match shader_mut(c, state.shader) {
                Ok(s) => s.source = state.source,
                Err(e) => c.set_error(e),
            }
        }
        Ok(Flow::Continue)
    }

    pub(super) fn shader_lengths(
        &mut self,
        channel: Channel,
        mut state: ShaderSource,
        data: &[u8],
        host: &mut dyn KhrnHost,
    ) -> Result<(), KhrnError> {
        state.lengths = Some(bytes_to_words(data).map(|w| w as i32).collect());
        self.next_shader_string(channel, state, host).map(drop)
    }

    pub(super) fn shader_string_length(
        &mut self,
        channel: Channel,
        mut state: ShaderSource,
        data: &[u8],
        host: &mut dyn KhrnHost,
    ) -> Result<(), KhrnError> {
        let len = bytes_to_words(data).next().unwrap_or(0);
        if len == 0 {
            state.index += 1;
            return self.next_shader_string(channel, state, host).map(drop);
        }
        let action = PayloadAction::ShaderString(state);
        self.expect_payload(channel, ids::GLSHADERSOURCE_20, len, action, host)
            .map(drop)
    }

    pub(super) fn shader_string(
        &mut self,
        channel: Channel,
        mut state: ShaderSource,
        data: &[u8],
        host: &mut dyn KhrnHost,
    ) -> Result<(), KhrnError> {
        // A string whose length the client computed carries its NUL: the text ends there.
        let text = data.split(|&b| b == 0).next().unwrap_or_default();
        let room = MAX_SHADER_SOURCE.saturating_sub(state.source.len());
        state
            .source
            .extend_from_slice(&text[..text.len().min(room)]);
        state.index += 1;
        self.next_shader_string(channel, state, host).map(drop)
    }
}

fn shader_mut(c: &mut Context, name: u32) -> Result<&mut ShaderObject, u32> {
    match c.objects.get_mut(&name) {
        Some(Object20::Shader(s)) => Ok(s),
        Some(Object20::Program(_)) => Err(INVALID_OPERATION),
        None => Err(INVALID_VALUE),
    }
}

fn program_mut(c: &mut Context, name: u32) -> Result<&mut ProgramObject, u32> {
    match c.objects.get_mut(&name) {
        Some(Object20::Program(p)) => Ok(p),
        Some(Object20::Shader(_)) => Err(INVALID_OPERATION),
        None => Err(INVALID_VALUE),
    }
}

/// Programs `shader` is attached to.
fn attached_anywhere(c: &Context, shader: u32) -> bool {
    c.objects
        .values()
        .any(|o| matches!(o, Object20::Program(p) if p.attached.contains(&shader)))
}

fn delete_object(c: &mut Context, name: u32, shader: bool) {
    if name == 0 {
        return;
    }
    match (c.objects.get_mut(&name), shader) {
        (Some(Object20::Shader(_)), true) => {
            if attached_anywhere(c, name) {
                if let Some(Object20::Shader(s)) = c.objects.get_mut(&name) {
                    s.delete_pending = true;
                }
            } else {
                c.objects.remove(&name);
            }
        }
        (Some(Object20::Program(p)), false) => {
            if c.current_program == name {
                p.delete_pending = true;
            } else {
                remove_program(c, name);
            }
        }
        (Some(_), _) => c.set_error(INVALID_OPERATION),
        (None, _) => c.set_error(INVALID_VALUE),
    }
}

/// Deletes a program, then the shaders only it kept alive.
fn remove_program(c: &mut Context, name: u32) {
    if let Some(Object20::Program(p)) = c.objects.remove(&name) {
        for s in p.attached {
            let pending =
                matches!(c.objects.get(&s), Some(Object20::Shader(sh)) if sh.delete_pending);
            if pending && !attached_anywhere(c, s) {
                c.objects.remove(&s);
            }
        }
    }
}

fn attach(c: &mut Context, program: u32, shader: u32) -> Result<(), u32> {
    let kind = shader_mut(c, shader)?.kind;
    let others: Vec<u32> = program_mut(c, program)?.attached.clone();
    let same_kind = others
        .iter()
        .any(|s| matches!(c.objects.get(s), Some(Object20::Shader(o)) if o.kind == kind));
    if others.contains(&shader) || same_kind {
        return Err(INVALID_OPERATION);
    }
    program_mut(c, program)?.attached.push(shader);
    Ok(())
}

fn detach(c: &mut Context, program: u32, shader: u32) -> Result<(), u32> {
    shader_mut(c, shader)?;
    let p = program_mut(c, program)?;
    let Some(at) = p.attached.iter().position(|&s| s == shader) else {
        return Err(INVALID_OPERATION);
    };
    p.attached.remove(at);
    let pending = matches!(c.objects.get(&shader), Some(Object20::Shader(s)) if s.delete_pending);
    if pending && !attached_anywhere(c, shader) {
        c.objects.remove(&shader);
    }
    Ok(())
}

fn link(c: &mut Context, name: u32) -> Result<(), u32> {
    let attached = program_mut(c, name)?.attached.clone();
    let shaders: Vec<_> = attached
        .iter()
        .filter_map(|s| match c.objects.get(s) {
            Some(Object20::Shader(sh)) => Some((sh.kind, sh.compiled.clone())),
            _ => None,
        })
        .collect();
    program_mut(c, name)?.link(&shaders);
    Ok(())
}

fn use_program(c: &mut Context, name: u32) -> Result<(), u32> {
    if name != 0 && !program_mut(c, name)?.link_status {
        return Err(INVALID_OPERATION);
    }
    let old = std::mem::replace(&mut c.current_program, name);
    if old != name && matches!(c.objects.get(&old), Some(Object20::Program(p)) if p.delete_pending)
    {
        remove_program(c, old);
    }
    Ok(())
}

fn shader_iv(c: &mut Context, name: u32, pname: u32) -> Result<i32, u32> {
    let s = shader_mut(c, name)?;
    Ok(match pname {
        SHADER_TYPE => s.kind as i32,
        DELETE_STATUS => i32::from(s.delete_pending),
        COMPILE_STATUS => i32::from(s.compile_status),
        // Lengths include the terminating NUL; 0 when empty.
        INFO_LOG_LENGTH => text_len(s.log.len()),
        SHADER_SOURCE_LENGTH => text_len(s.source.len()),
        _ => return Err(INVALID_ENUM),
    })
}

fn text_len(n: usize) -> i32 {
    if n == 0 { 0 } else { n as i32 + 1 }
}

fn program_iv(c: &mut Context, name: u32, pname: u32) -> Result<i32, u32> {
    let p = program_mut(c, name)?;
    let max_len = |v: &[vc_glsl::ActiveVariable]| {
        v.iter().map(|a| a.name.len() as i32 + 1).max().unwrap_or(0)
    };
    let linked = p.linked.as_deref();
    Ok(match pname {
        DELETE_STATUS => i32::from(p.delete_pending),
        LINK_STATUS => i32::from(p.link_status),
        VALIDATE_STATUS => i32::from(p.validate_status),
        INFO_LOG_LENGTH => text_len(p.log.len()),
        ATTACHED_SHADERS => p.attached.len() as i32,
        ACTIVE_UNIFORMS => linked.map_or(0, |l| l.uniforms().len() as i32),
        ACTIVE_UNIFORM_MAX_LENGTH => linked.map_or(0, |l| max_len(l.uniforms())),
        ACTIVE_ATTRIBUTES => linked.map_or(0, |l| l.attributes().len() as i32),
        ACTIVE_ATTRIBUTE_MAX_LENGTH => linked.map_or(0, |l| max_len(l.attributes())),
        _ => return Err(INVALID_ENUM),
    })
}

fn object_text(c: &mut Context, name: u32, which: Text) -> Result<Vec<u8>, u32> {
    Ok(match which {
        Text::ShaderLog => shader_mut(c, name)?.log.as_bytes().to_vec(),
        Text::ShaderSource => shader_mut(c, name)?.source.clone(),
        Text::ProgramLog => program_mut(c, name)?.log.as_bytes().to_vec(),
    })
}

/// `glGetActiveAttrib` / `glGetActiveUniform`: `(size, type, name)`.
fn active_variable(
    c: &mut Context,
    program: u32,
    index: u32,
    attrib: bool,
) -> Result<(u32, u32, String), u32> {
    let p = program_mut(c, program)?;
    let linked = p.linked.as_ref().ok_or(INVALID_VALUE)?;
    let list = if attrib {
        linked.attributes()
    } else {
        linked.uniforms()
    };
    let v = list.get(index as usize).ok_or(INVALID_VALUE)?;
    Ok((v.size, v.ty.gl_enum(), v.name.clone()))
}

/// `glGetUniformfv` / `iv`: the value at `location`, converted.
fn uniform_value(
    c: &mut Context,
    program: u32,
    location: i32,
    float: bool,
) -> Result<Vec<u32>, u32> {
    let p = program_mut(c, program)?;
    let linked = p.linked.as_ref().ok_or(INVALID_OPERATION)?;
    let slot = linked.uniform_slot(location).ok_or(INVALID_OPERATION)?;
    let words = p
        .uniforms
        .get(slot.offset..slot.offset + slot.ty.components())
        .ok_or(INVALID_OPERATION)?;
    let is_float = matches!(
        slot.ty,
        vc_glsl::Type::Float
            | vc_glsl::Type::Vec2
            | vc_glsl::Type::Vec3
            | vc_glsl::Type::Vec4
            | vc_glsl::Type::Mat2
            | vc_glsl::Type::Mat3
            | vc_glsl::Type::Mat4
    );
    Ok(words
        .iter()
        .map(|&w| match (is_float, float) {
            (true, false) => f32::from_bits(w) as i32 as u32,
            (false, true) => (w as i32 as f32).to_bits(),
            _ => w,
        })
        .collect())
}
