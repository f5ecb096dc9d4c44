//! Error text shared by the layers that report errors without rendering them (the
//! executor's events, the destroy report's "not checked" lines): an error and its causes
//! on one line.
//!
//! Below an API's own words ([`crate::adapters::Cause`]) lies the client's typed error
//! (the AWS SDK's, kube-rs's); it stays in the source chain for whoever inspects it, and is
//! left out of the text, which already says what it says.

use std::error::Error;

/// `error: cause: cause`, down to the API's own words.
pub fn chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error;
    while !current.is::<crate::adapters::Cause>() {
        let Some(cause) = current.source() else {
            break;
        };
        let line = cause.to_string();
        if !line.is_empty() && !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        current = cause;
    }
    text
}
