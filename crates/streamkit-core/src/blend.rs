//! blend
