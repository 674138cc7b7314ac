//! Image scaling (skeleton: being filled in).
