//! The software VideoCore: the firmware role behind the VCHIQ link.

pub mod dispmanx;
pub mod gencmd;
pub mod khrn;
pub mod tvservice;
pub mod vclog;
