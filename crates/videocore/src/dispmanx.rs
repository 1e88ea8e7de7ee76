//! dispmanx (in progress)
