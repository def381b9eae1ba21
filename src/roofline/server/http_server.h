// The OpenAI-compatible HTTP front end (cpp-httplib): routes, API key, body limit, JSON errors, SSE
// streaming, client disconnects and graceful drain. Requests go to the Engine; nothing here touches the
// model.
//
//   POST /v1/completions, POST /v1/chat/completions   generation (stream: true for SSE)
//   GET  /v1/models, GET /v1/models/{id}              the served model
//   GET  /health                                      200 {"status":"ok"}; 503 while draining
//   GET  /metrics                                     Prometheus text
// Errors are OpenAI-shaped JSON: 400 bad input, 401 wrong or missing key (only /v1/* needs it), 404
// unknown route or model, 405 wrong method, 408 past --request-timeout (non-streaming), 413 body too
// large, 429 waiting queue full, 503 draining, 500 engine failure.
//
// Disconnects and timeouts:
//  - streaming: a failed write (the client went away) ends the response, and the content provider's
//    releaser cancels the request, which frees its KV blocks at the engine's next step. Only writes reveal
//    a closed connection, so a request still waiting for admission (holding no blocks) notices at its
//    first token. A request past its timeout gets an error event
//    (`data: {"error": {..., "code": "request_timeout"}}`) and [DONE].
//  - non-streaming: cpp-httplib 0.11 gives a handler no way to see that its client left (no
//    is_connection_closed; the socket is hidden), so such a request runs to completion or to its timeout,
//    then the write fails. Its timeout answers 408 with an OpenAI error body (not a partial completion).
#pragma once
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "roofline/server/engine.h"
#include "roofline/server/metrics.h"
#include "roofline/server/prompt_builder.h"

namespace roofline::server {

struct HttpServerConfig {
  std::string host = "127.0.0.1";
  int port = 8080;                   // 0: any free port (bind() says which)
  std::string api_key;               // empty: no authentication
  size_t max_body_bytes = 8u << 20;  // larger bodies answer 413
  std::chrono::milliseconds request_timeout{600'000};
  // HTTP worker threads. Each open connection holds one for as long as it is open (a streaming response,
  // a keep-alive connection between requests), so this bounds the concurrent clients; more wait unserved.
  int threads = 64;
};

class HttpServer {
 public:
  // engine and metrics must outlive the server; model's pointers too.
  HttpServer(Engine& engine, ServedModel model, Metrics& metrics, HttpServerConfig config);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port. Throws roofline::Error when the address is unusable.
  int bind();
  // Serves until stop(); call after bind(), from a thread of its own.
  void run();
  // From now on generation requests answer 503 and /health 503; requests already accepted continue.
  void begin_drain();
  // True when no generation request is queued, running or still writing its response.
  bool drained() const;
  // Stops listening and returns once run() can return. Streams still open end at their next chunk.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace roofline::server
