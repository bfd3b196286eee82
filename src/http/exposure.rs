//! Which routes a listener serves, so operators can keep `/metrics` and
//! `/health` off the public interface that peers fetch `/descriptor` from.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response};

use super::routes::{Route, not_found, respond};
use super::status::NodeStatus;

/// The routes one HTTP listener answers; any other known path is 404 there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Exposure {
    /// Every route (one listener for everything: the default).
    #[default]
    All,
    /// What peers and senders need: `/descriptor` and `/vrf/…`.
    Public,
    /// What operators need: `/metrics`, `/health`, `/ready` and `/loops`.
    Private,
}

impl Exposure {
    /// Whether a listener with this exposure serves `route`.
    pub fn serves(self, route: Route) -> bool {
        let public = matches!(route, Route::Descriptor | Route::Vrf(_));
        match self {
            Exposure::All => true,
            Exposure::Public => public,
            Exposure::Private => !public,
        }
    }

    /// Answers one request on a listener with this exposure (see
    /// [`respond`]).
    pub fn respond(
        self,
        method: &Method,
        path: &str,
        status: &dyn NodeStatus,
    ) -> Response<Full<Bytes>> {
        match Route::parse(path) {
            Ok(route) if !self.serves(route) => not_found(),
            _ => respond(method, path, status),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::VrfQuery;

    #[test]
    fn public_and_private_split_the_routes() {
        let all = [
            Route::Metrics,
            Route::Health,
            Route::Ready,
            Route::Descriptor,
            Route::Vrf(VrfQuery::Current),
            Route::Loops,
        ];
        for route in all {
            assert!(Exposure::All.serves(route));
            assert_ne!(
                Exposure::Public.serves(route),
                Exposure::Private.serves(route),
                "{route:?}"
            );
        }
        assert!(Exposure::Public.serves(Route::Descriptor));
        assert!(Exposure::Public.serves(Route::Vrf(VrfQuery::Epoch(3))));
        assert!(Exposure::Private.serves(Route::Metrics));
        assert!(Exposure::Private.serves(Route::Health));
        assert!(Exposure::Private.serves(Route::Ready));
        assert!(Exposure::Private.serves(Route::Loops));
    }
}
