//! The commands of the binary, one file each: what they ask, how
//! they print it, what their exit statuses mean.

pub(crate) mod call;
pub(crate) mod control;
pub(crate) mod load;
pub(crate) mod manifests;
pub(crate) mod mesh;
pub(crate) mod plan;
pub(crate) mod requests;
pub(crate) mod serve;
