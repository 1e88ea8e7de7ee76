//! The software VideoCore: the firmware role behind the VCHIQ link.
//!
//! On a Raspberry Pi the VideoCore GPU runs closed firmware that serves the host through
//! VCHIQ services: text commands (GCMD, what `vcgencmd` talks to), the display manager
//! (DISP/UPDH), the TV service (TVSV/TVNT), CEC (CECS/CECN), the Khronos RPC for EGL and
//! OpenGL ES (KHRN/KHHN, with KHAN for notifications) and test services. This crate plays
//! that role in software, as the *master* side of [`vchiq_link`]:
//!
//! - [`firmware`]: the service registry, the worker that takes link events in order, and
//!   the routing of KHAN posts by the client id the driver attested;
//! - [`gencmd`], [`tvservice`], [`dispmanx`], [`khrn`]: transport-independent service
//!   engines (request in, replies out), each testable on its own;
//! - [`testsvc`]: `echo`, `func` and `fun2`, scripted as the real `vchiq_test` expects;
//! - [`vclog`]: the message log that `vcdbg log msg` prints.
//!
//! Rendering is done by [`vc_gles`], a software OpenGL ES 1.1 renderer, and the display
//! compositor scans dispmanx elements out into a framebuffer that can be written as PNG.

pub mod dispmanx;
pub mod firmware;
pub mod gencmd;
pub mod khrn;
pub mod testsvc;
pub mod tvservice;
pub mod vclog;

pub use firmware::{
    Connection, DisplayOutput, VCDB, VcLink, VideoCore, VideoCoreError, VideoCoreOptions,
};
