//! A test-only route that panics the way the VAT check once did (slicing
//! inside a multi-byte character), mounted with `Application::build_with_routes`.

use actix_web::web;

pub fn panicking_routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/test/panic",
        web::get().to(|| async {
            let text = String::from("tº²R");
            #[allow(clippy::string_slice)]
            let prefix = &text[..2];
            prefix.to_owned()
        }),
    );
}
