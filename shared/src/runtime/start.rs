//! How every function starts: the root-certificate setting first, while only one thread
//! runs (see [`crate::runtime::tls`]), then the tokio runtime that serves the invocations.

use std::future::Future;

/// Runs a function's `main` future on a new multi-threaded runtime.
pub fn block_on<F: Future>(main: F) -> Result<F::Output, std::io::Error> {
    crate::runtime::tls::use_one_root_bundle();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(main))
}
