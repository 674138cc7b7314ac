//! Text rendering (skeleton: being filled in).
