//! The application-server side: requests as handlers see them, the route table, handler
//! errors, the bounded worker pool for handlers that block, and streamed response bodies.

mod error;
pub(crate) mod pool;
mod request;
mod router;

pub use crate::http::stream::{BodySender, Disconnected};
pub use error::{Error, IntoResponse, Result};
pub use request::Request;
pub use request::StateMap;
pub use router::{Execution, Handler, RouteMatch, Router};
