//! The commands of the binary beyond `serve`, one file each: what they ask, how
//! they print it, what their exit statuses mean.

pub(crate) mod call;
pub(crate) mod mesh;
pub(crate) mod requests;
