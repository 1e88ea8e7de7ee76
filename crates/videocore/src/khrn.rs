//! khrn (in progress)
