//! A job's life, in the order it is lived: what a job is ([`job`]), the queue and result store
//! it waits in ([`queue`], kept in [`embedded`] redb, dated by a [`clock`], or in
//! [`redis_store`]), where its bytes come from ([`source`]), the workers that scan it and act on
//! the object ([`worker`]), the signed callback that reports it ([`callback`]), and bulk scans,
//! whose listing is itself a job ([`bulk`]).

pub(crate) mod job;
pub(crate) mod queue;

pub(crate) mod clock;
pub(crate) mod embedded;
pub(crate) mod redis_store;

pub(crate) mod source;
pub(crate) mod worker;

pub(crate) mod callback;

pub mod bulk;
