//! vchiqd
