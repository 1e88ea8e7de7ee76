//! vc-gles
