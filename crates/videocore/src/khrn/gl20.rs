//! OpenGL ES 2.0-only commands: framed and answered exactly, nothing compiled or drawn.
//!
//! `glShaderSource` has its own multi-payload framing (`[shader, count, total,
//! has_lengths]`, then optionally the `count·4`-byte length array, then for each string an
//! optional 4-byte length and the string itself); it is followed payload by payload with
//! the [`ShaderSource`] state.

use super::gl::glenum::INVALID_VALUE;
use super::state::{LocationKind, Object20, PayloadAction, ShaderSource};
use super::wire::{Words, bytes_to_words};
use super::{Channel, Flow, KhrnError, KhrnHost, KhrnServer, ids};

/// Most strings accepted in one `glShaderSource`.
const MAX_SHADER_STRINGS: u32 = 1 << 16;
/// Source bytes kept per shader (framing continues past it; the rest is dropped).
const MAX_SHADER_SOURCE: usize = 1 << 20;

impl KhrnServer {
    pub(super) fn gl20_command(
        &mut self,
        channel: Channel,
        id: u32,
        w: &mut Words<'_>,
        host: &mut dyn KhrnHost,
    ) -> Result<Flow, KhrnError> {
        match id {
            ids::GLCREATESHADER_20 | ids::GLCREATEPROGRAM_20 => {
                let kind = if id == ids::GLCREATESHADER_20 {
                    w.u32(id)?;
                    Object20::Shader
                } else {
                    Object20::Program
                };
                let name = self.create_object(channel, kind);
                self.reply_u32(host, channel, name);
            }
            ids::GLDELETESHADER_20 | ids::GLDELETEPROGRAM_20 => {
                let name = w.u32(id)?;
                if let Some(c) = self.context_mut(channel) {
                    c.objects.remove(&name);
                }
            }
            ids::GLCOMPILESHADER_20
            | ids::GLLINKPROGRAM_20
            | ids::GLUSEPROGRAM_20
            | ids::GLVALIDATEPROGRAM_20 => {
                w.u32(id)?;
            }
            ids::GLATTACHSHADER_20 | ids::GLDETACHSHADER_20 => {
                w.array::<2>(id)?;
            }
            ids::GLUNIFORM1F_20 | ids::GLUNIFORM1I_20 => {
                w.array::<2>(id)?;
            }
            ids::GLUNIFORM2F_20 | ids::GLUNIFORM2I_20 => {
                w.array::<3>(id)?;
            }
            ids::GLUNIFORM3F_20 | ids::GLUNIFORM3I_20 => {
                w.array::<4>(id)?;
            }
            ids::GLUNIFORM4F_20 | ids::GLUNIFORM4I_20 => {
                w.array::<5>(id)?;
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
            ids::GLSHADERSOURCE_20 => {
                let [shader, count, _total, has_lengths] = w.array::<4>(id)?;
                if count > MAX_SHADER_STRINGS {
                    if let Some(c) = self.context_mut(channel) {
                        c.set_error(INVALID_VALUE);
                    }
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

    fn create_object(&mut self, channel: Channel, kind: super::state::Object20) -> u32 {
        let Some(c) = self.context_mut(channel) else {
            return 0;
        };
        if c.objects.len() >= super::state::MAX_NAMES {
            return 0;
        }
        loop {
            c.next_object = c.next_object.wrapping_add(1);
            if c.next_object != 0 && !c.objects.contains_key(&c.next_object) {
                c.objects.insert(c.next_object, kind);
                return c.next_object;
            }
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
        // Sources are not compiled; the text is only kept for diagnostics.
        let _ = (state.shader, state.source.len());
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
        let room = MAX_SHADER_SOURCE.saturating_sub(state.source.len());
        state
            .source
            .extend_from_slice(&data[..data.len().min(room)]);
        state.index += 1;
        self.next_shader_string(channel, state, host).map(drop)
    }
}
