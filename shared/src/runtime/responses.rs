//! The HTTP answers of the functions behind API Gateway, in one place: a request's path
//! segments, the refusals every router shares (404, and 405 with `Allow`), JSON bodies, and
//! the one error shape `{"error": <code>, "message": <text>, ...}`. Generic over the body
//! type, so a function answers with its runtime's body (`lambda_http::Body`).

use http::{header, HeaderValue, Method, Response, StatusCode};
use serde_json::{json, Value};

/// Why a request matched no route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// No such path.
    NotFound,
    /// The path exists; it takes these methods.
    MethodNotAllowed(&'static str),
}

/// The percent-decoded segments of a path (API Gateway passes the raw path), without the
/// leading and trailing slash.
pub fn segments(path: &str) -> Vec<String> {
    path.trim_matches('/')
        .split('/')
        .map(|segment| {
            percent_encoding::percent_decode_str(segment)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// The route a path takes for `method`, among `routes`; `allow` lists the path's methods for
/// a 405.
pub fn by_method<R>(
    method: &Method,
    allow: &'static str,
    routes: impl IntoIterator<Item = (Method, R)>,
) -> Result<R, NoRoute> {
    routes
        .into_iter()
        .find_map(|(m, route)| (m == *method).then_some(route))
        .ok_or(NoRoute::MethodNotAllowed(allow))
}

/// A JSON answer.
pub fn json<B: From<String>>(status: StatusCode, body: &Value) -> Response<B> {
    let mut response = Response::new(B::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// The error shape, with `fields` added beside `error` and `message`.
pub fn error<B: From<String>>(
    status: StatusCode,
    code: &str,
    message: &str,
    fields: &[(&str, Value)],
) -> Response<B> {
    let mut body = json!({"error": code, "message": message});
    for (name, value) in fields {
        body[*name] = value.clone();
    }
    json(status, &body)
}

/// Tells the client when to come back.
pub fn retry_after<B>(response: &mut Response<B>, seconds: u64) {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
}

/// The answer to a request that matched no route.
pub fn no_route<B: From<String>>(path: &str, why: &NoRoute) -> Response<B> {
    match why {
        NoRoute::NotFound => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route for {path}"),
            &[],
        ),
        NoRoute::MethodNotAllowed(allow) => {
            let mut response = error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                &format!("{path} takes {allow}"),
                &[],
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
            response
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_refusals() {
        assert_eq!(segments("/v1/pulls/a%2Fb/"), ["v1", "pulls", "a/b"]);
        let pick = |m: Method| by_method(&m, "GET, POST", [(Method::GET, 1), (Method::POST, 2)]);
        assert_eq!(pick(Method::POST), Ok(2));
        assert_eq!(
            pick(Method::DELETE),
            Err(NoRoute::MethodNotAllowed("GET, POST"))
        );
        let r: Response<String> = no_route("/v1/x", &NoRoute::MethodNotAllowed("GET"));
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET");
        let r: Response<String> = error(
            StatusCode::BAD_REQUEST,
            "invalid",
            "no",
            &[("field", json!("id"))],
        );
        let body: Value = serde_json::from_str(r.body()).unwrap();
        assert_eq!(
            body,
            json!({"error": "invalid", "message": "no", "field": "id"})
        );
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
