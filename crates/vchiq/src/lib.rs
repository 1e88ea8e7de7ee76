//! vchiq
