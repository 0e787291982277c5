//! The client commands of the binary, one file each: what they ask, how
//! they print it, what their exit statuses mean.

pub(crate) mod call;
pub(crate) mod requests;
