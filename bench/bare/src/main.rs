//! `bare WORKERS PATH=FILE...`: serves each file's bytes as
//! `application/json` at its path on 127.0.0.1 (a random port, printed as
//! `port=N`), 404 elsewhere. No middleware, no logging: what actix-web alone
//! costs to send the same bytes as the gateway.

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let workers: usize = args.next().and_then(|w| w.parse().ok()).unwrap_or(2);
    let mut routes = Vec::new();
    for arg in args {
        let (path, file) = arg.split_once('=').expect("PATH=FILE");
        routes.push((path.to_owned(), web::Bytes::from(std::fs::read(file)?)));
    }
    let server = HttpServer::new(move || {
        routes.iter().fold(App::new(), |app, (path, body)| {
            let body = body.clone();
            app.route(
                path,
                web::get().to(move || {
                    let body = body.clone();
                    async move {
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body(body)
                    }
                }),
            )
        })
    })
    .workers(workers)
    .bind(("127.0.0.1", 0))?;
    println!("port={}", server.addrs()[0].port());
    server.run().await
}
