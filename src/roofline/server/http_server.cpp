#include "roofline/server/http_server.h"

#include <sys/socket.h>

#include <httplib.h>

#include <atomic>
#include <chrono>

#include "roofline/core/error.h"
#include "roofline/server/openai_responses.h"

namespace roofline::server {
namespace {

using namespace std::chrono_literals;

int64_t unix_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void send_json(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) { send_json(res, e.status, e.to_json()); }

// Compares in time independent of where the strings differ, so the key cannot be guessed byte by byte.
bool same_secret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= (unsigned char)(a[i] ^ (i < b.size() ? b[i] : 0));
  return diff == 0;
}

// The error a stream that did not finish ends with.
ApiError stream_end_error(StreamEnd end, const std::string& message) {
  switch (end) {
    case StreamEnd::kTimeout: return ApiError(408, message, "timeout_error", {}, "request_timeout");
    case StreamEnd::kCancelled:
      return ApiError(503, message.empty() ? "the request was cancelled" : message, "server_error", {}, "cancelled");
    default: return ApiError(500, message, "server_error", {}, "internal_error");
  }
}

// Counts a generation request from acceptance until its response is written (or abandoned).
class ActiveRequest {
 public:
  explicit ActiveRequest(std::atomic<int>& count) : count_(count) { count_++; }
  ~ActiveRequest() { count_--; }
  ActiveRequest(const ActiveRequest&) = delete;
  ActiveRequest& operator=(const ActiveRequest&) = delete;

 private:
  std::atomic<int>& count_;
};

// One streaming response: shared by the content provider and its releaser, alive until both are gone.
struct StreamState {
  StreamState(std::shared_ptr<RequestStream> s, ResponseMeta m, const Tokenizer& tokenizer,
              std::shared_ptr<ActiveRequest> a)
      : stream(std::move(s)), meta(std::move(m)), logprobs(tokenizer, meta.endpoint, stream->num_choices()),
        active(std::move(a)) {
    usage.prompt_tokens = stream->prompt_tokens();
  }
  std::shared_ptr<RequestStream> stream;
  ResponseMeta meta;
  LogprobFormatter logprobs;
  std::shared_ptr<ActiveRequest> active;
  Usage usage;
  std::vector<SequenceEvent> events;
  bool opened = false;    // the chat role chunks are out
  bool finished = false;  // [DONE] is out
};

}  // namespace

struct HttpServer::Impl {
  Impl(Engine& e, ServedModel m, Metrics& me, HttpServerConfig c)
      : engine(e), model(std::move(m)), metrics(me), config(std::move(c)), started(unix_seconds()) {}

  Engine& engine;
  ServedModel model;
  Metrics& metrics;
  HttpServerConfig config;
  int64_t started;
  httplib::Server http;
  std::atomic<bool> draining{false};
  std::atomic<int> active{0};  // generation requests accepted and not yet fully answered
  std::atomic<bool> serving{false}, stop_requested{false};

  void set_up();
  void check_auth(const httplib::Request& req) const;
  void generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint);
  void respond_whole(httplib::Response& res, const std::shared_ptr<RequestStream>& stream, const ResponseMeta& meta);
  void respond_streaming(httplib::Response& res, const std::shared_ptr<RequestStream>& stream, const ResponseMeta& meta,
                         std::shared_ptr<ActiveRequest> active);
  bool write_stream(StreamState& s, httplib::DataSink& sink);
  Json model_card() const;
};

void HttpServer::Impl::check_auth(const httplib::Request& req) const {
  if (config.api_key.empty()) return;
  const std::string header = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (header.rfind(prefix, 0) != 0 || !same_secret(header.substr(prefix.size()), config.api_key))
    throw ApiError(401, header.empty() ? "missing API key: send it as 'Authorization: Bearer KEY'"
                                       : "incorrect API key provided",
                   "invalid_request_error", {}, "invalid_api_key");
}

Json HttpServer::Impl::model_card() const {
  return Json{{"id", model.name}, {"object", "model"}, {"created", started}, {"owned_by", "roofline"},
              {"max_model_len", model.context_length}};
}

void HttpServer::Impl::generate(const httplib::Request& req, httplib::Response& res, Endpoint endpoint) {
  check_auth(req);
  if (draining) {
    metrics.count_request(RequestOutcome::kRejected);
    throw ApiError(503, "the server is shutting down", "server_error", {}, "shutting_down");
  }
  ParsedRequest parsed;
  GenerationRequest request;
  try {
    parsed = endpoint == Endpoint::kChat ? parse_chat_request(req.body) : parse_completion_request(req.body);
    if (!parsed.model.empty() && parsed.model != model.name)
      throw ApiError(404,
                     fmt::format("The model '{}' does not exist; this server serves '{}'", parsed.model, model.name),
                     "invalid_request_error", "model", "model_not_found");
    request = build_generation_request(parsed, model);
  } catch (const ApiError&) {
    metrics.count_request(RequestOutcome::kInvalid);
    throw;
  }
  request.timeout = config.request_timeout;
  // Counted before the engine sees it, so drained() is never true while its response is unwritten.
  auto counted = std::make_shared<ActiveRequest>(active);
  std::shared_ptr<RequestStream> stream;
  try {
    stream = engine.submit(std::move(request));
  } catch (const SubmitError& e) {
    using Kind = SubmitError::Kind;
    const bool rejected = e.kind() == Kind::kQueueFull || e.kind() == Kind::kDraining;
    metrics.count_request(rejected ? RequestOutcome::kRejected : RequestOutcome::kInvalid);
    if (e.kind() == Kind::kQueueFull) throw ApiError(429, e.what(), "rate_limit_error", {}, "queue_full");
    if (e.kind() == Kind::kDraining) throw ApiError(503, e.what(), "server_error", {}, "shutting_down");
    throw invalid_request(e.what(), "max_tokens", e.kind() == Kind::kTooLarge ? "context_length_exceeded" : "");
  }
  const ResponseMeta meta{.id = new_response_id(endpoint),
                          .created = unix_seconds(),
                          .model = model.name,
                          .endpoint = endpoint,
                          .logprobs = parsed.logprobs >= 0,
                          .include_usage = parsed.include_usage};
  if (parsed.stream) respond_streaming(res, stream, meta, std::move(counted));
  else respond_whole(res, stream, meta);
}

void HttpServer::Impl::respond_whole(httplib::Response& res, const std::shared_ptr<RequestStream>& stream,
                                     const ResponseMeta& meta) {
  std::vector<ChoiceResult> choices(size_t(stream->num_choices()));
  Usage usage{.prompt_tokens = stream->prompt_tokens(), .completion_tokens = 0};
  std::vector<SequenceEvent> events;
  while (stream->next(events, 1s)) {
    for (SequenceEvent& e : events) {
      ChoiceResult& c = choices.at(size_t(e.index));
      c.text += e.text;
      c.logprobs.insert(c.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
      if (e.finish != FinishReason::kNone) c.finish = e.finish;
      usage.completion_tokens += int64_t(e.token_ids.size());
    }
    events.clear();
  }
  if (stream->end() != StreamEnd::kFinished)
    return send_error(res, stream_end_error(stream->end(), stream->error_message()));
  LogprobFormatter logprobs(*model.tokenizer, meta.endpoint, stream->num_choices());
  send_json(res, 200, response_body(meta, choices, usage, logprobs));
}

void HttpServer::Impl::respond_streaming(httplib::Response& res, const std::shared_ptr<RequestStream>& stream,
                                         const ResponseMeta& meta, std::shared_ptr<ActiveRequest> active) {
  auto state = std::make_shared<StreamState>(stream, meta, *model.tokenizer, std::move(active));
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, state](size_t /*offset*/, httplib::DataSink& sink) { return write_stream(*state, sink); },
      // Runs however the response ended: unless [DONE] went out, the client is gone (or the server
      // stopped): cancel, freeing the request's blocks.
      [this, state](bool /*success*/) {
        if (!state->finished) engine.cancel(state->stream->id());
      });
}

// One call per chunk of events; returns false (ending the response) when the client is gone.
bool HttpServer::Impl::write_stream(StreamState& s, httplib::DataSink& sink) {
  std::string out;
  if (!s.opened && s.meta.endpoint == Endpoint::kChat)
    for (int i = 0; i < s.stream->num_choices(); ++i) out += sse_event(role_chunk(s.meta, i));
  s.opened = true;
  s.events.clear();
  // A short wait keeps the provider loop responsive to the server stopping.
  const bool more = s.stream->next(s.events, 100ms);
  for (const SequenceEvent& e : s.events) {
    s.usage.completion_tokens += int64_t(e.token_ids.size());
    if (!e.text.empty() || !e.logprobs.empty()) out += sse_event(delta_chunk(s.meta, e, &s.logprobs));
    if (e.finish != FinishReason::kNone) out += sse_event(finish_chunk(s.meta, e.index, e.finish));
  }
  if (!more) {
    if (s.stream->end() == StreamEnd::kFinished) {
      if (s.meta.include_usage) out += sse_event(usage_chunk(s.meta, s.usage));
    } else {
      out += sse_event(stream_end_error(s.stream->end(), s.stream->error_message()).to_json());
    }
    out += kSseDone;
  }
  if (!out.empty() && !sink.write(out.data(), out.size())) return false;
  if (!more) {
    s.finished = true;
    sink.done();
  }
  return true;
}

void HttpServer::Impl::set_up() {
  // Every handler answers errors the same way: OpenAI's JSON shape.
  auto guarded = [this](auto&& body) {
    return [this, body](const httplib::Request& req, httplib::Response& res) {
      try {
        body(req, res);
      } catch (const ApiError& e) {
        send_error(res, e);
      } catch (const std::exception& e) {
        send_error(res, ApiError(500, e.what(), "server_error", {}, "internal_error"));
      }
    };
  };
  http.Post("/v1/completions",
            guarded([this](const auto& req, auto& res) { generate(req, res, Endpoint::kCompletions); }));
  http.Post("/v1/chat/completions",
            guarded([this](const auto& req, auto& res) { generate(req, res, Endpoint::kChat); }));
  http.Get("/v1/models", guarded([this](const auto& req, auto& res) {
    check_auth(req);
    send_json(res, 200, Json{{"object", "list"}, {"data", Json::array({model_card()})}});
  }));
  http.Get("/v1/models/(.+)", guarded([this](const auto& req, auto& res) {
    check_auth(req);
    if (req.matches[1] != model.name)
      throw ApiError(404, fmt::format("The model '{}' does not exist", req.matches[1].str()), "invalid_request_error",
                     "model", "model_not_found");
    send_json(res, 200, model_card());
  }));
  http.Get("/health", guarded([this](const auto&, auto& res) {
    send_json(res, draining ? 503 : 200, Json{{"status", draining ? "draining" : "ok"}});
  }));
  http.Get("/metrics", guarded([this](const auto&, auto& res) {
    res.set_content(metrics.render(engine.gauges()), "text/plain; version=0.0.4; charset=utf-8");
  }));

  // 405 for a known path with another method (cpp-httplib would answer 404).
  auto not_allowed = [](const char* allow) {
    return [allow](const httplib::Request& req, httplib::Response& res) {
      res.set_header("Allow", allow);
      send_error(res, ApiError(405, fmt::format("Method {} is not allowed for {}; use {}", req.method, req.path, allow),
                               "invalid_request_error", {}, "method_not_allowed"));
    };
  };
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    http.Get(path, not_allowed("POST")).Put(path, not_allowed("POST")).Patch(path, not_allowed("POST"));
    http.Delete(path, not_allowed("POST")).Options(path, not_allowed("POST"));
  }
  for (const char* path : {"/v1/models", "/v1/models/(.+)", "/health", "/metrics"}) {
    http.Post(path, not_allowed("GET")).Put(path, not_allowed("GET")).Patch(path, not_allowed("GET"));
    http.Delete(path, not_allowed("GET")).Options(path, not_allowed("GET"));
  }

  // Statuses cpp-httplib sets itself (404 unknown route, 413 body too large, 400 unreadable request) get
  // a JSON body too; responses our handlers already filled are left alone.
  const size_t limit = config.max_body_bytes;
  http.set_error_handler([limit](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty() || res.is_chunked_content_provider_) return;
    if (res.status == 404)
      return send_error(res, ApiError(404, fmt::format("Invalid URL ({} {})", req.method, req.path),
                                      "invalid_request_error", {}, "not_found"));
    // These two leave the request (or the rest of its body) unread on the connection: it cannot carry another
    // request, and a client that reused it would fail its next request ("other side closed").
    res.set_header("Connection", "close");
    if (res.status == 413)
      return send_error(res, ApiError(413, fmt::format("the request body is larger than the limit of {} bytes", limit),
                                      "invalid_request_error", {}, "request_too_large"));
    send_error(res, ApiError(res.status, fmt::format("the HTTP request could not be handled (status {})", res.status),
                             "invalid_request_error"));
  });
  http.set_payload_max_length(config.max_body_bytes);
  http.set_tcp_nodelay(true);  // SSE chunks are small: send each at once
  http.set_keep_alive_max_count(1000);
  http.set_write_timeout(10, 0);  // a client that stops reading for this long counts as gone
  const size_t threads = size_t(std::max(config.threads, 4));
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
}

HttpServer::HttpServer(Engine& engine, ServedModel model, Metrics& metrics, HttpServerConfig config)
    : impl_(std::make_unique<Impl>(engine, std::move(model), metrics, std::move(config))) {
  ROOFLINE_CHECK(impl_->model.tokenizer, "HttpServer: the served model needs a tokenizer");
  impl_->set_up();
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  const HttpServerConfig& c = impl_->config;
  // Debian's cpp-httplib listens with a backlog of 5, compiled into its library: a burst of new connections
  // past that is dropped and retried by clients a second later. Keep the socket (set_socket_options runs
  // on it before bind; it replaces httplib's own SO_REUSEADDR, so set that here) and listen again with
  // the system's limit once bound.
  int listening_fd = -1;
  impl_->http.set_socket_options([&listening_fd](socket_t fd) {
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    listening_fd = fd;
  });
  int port = c.port;
  if (port == 0) port = impl_->http.bind_to_any_port(c.host);
  else if (!impl_->http.bind_to_port(c.host, port)) port = -1;
  if (port <= 0) fail("serve: cannot listen on {}:{} (in use, or not an address of this machine)", c.host, c.port);
  if (listening_fd >= 0) ::listen(listening_fd, SOMAXCONN);
  impl_->http.set_socket_options([](socket_t fd) {  // later client sockets: httplib's default
    int yes = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  return port;
}

void HttpServer::run() {
  impl_->serving = true;
  if (!impl_->stop_requested) impl_->http.listen_after_bind();
  impl_->serving = false;
}

void HttpServer::begin_drain() {
  impl_->draining = true;
  impl_->engine.drain();
}

bool HttpServer::drained() const { return impl_->engine.idle() && impl_->active == 0; }

void HttpServer::stop() {
  impl_->stop_requested = true;
  // run() may be between its check and listening: wait until it listens (or returned) so stop() lands.
  while (impl_->serving && !impl_->http.is_running()) std::this_thread::sleep_for(1ms);
  impl_->http.stop();
}

}  // namespace roofline::server
