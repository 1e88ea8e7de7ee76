//! vchiq-link
