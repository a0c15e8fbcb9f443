//! `verdict-async` will live here (contract section 2, issue 4): the API-key service that takes a
//! URL or S3 object, scans it in the background, and delivers the verdict by signed callback or
//! polling, with an embedded durable queue and Redis for scale-out. Nothing is implemented yet;
//! the crate only reserves its place in the workspace.
