// Shared by the server tests: an engine over a fixture model, a runner that slows each step (so that a
// test can act while a request is still running), and a minimal HTTP/1.1 client over a raw socket (it can
// hang up mid-response, which a disconnect test needs).
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "roofline/backend/backend.h"
#include "roofline/model/decoder.h"
#include "roofline/model/model.h"
#include "roofline/server/engine.h"
#include "roofline/server/model_runner.h"
#include "roofline/tokenizer/tokenizer.h"
#include "test_support.h"

namespace roofline::server::test {

inline std::string fixture_model(const std::string& name = "qwen3-f32") {
  return roofline::test::fixtures_dir() + "/models/" + name;
}

// Sleeps before every step: a tiny model finishes 200 tokens in milliseconds, too fast to interrupt.
class SlowRunner final : public ModelRunner {
 public:
  SlowRunner(ModelRunner& inner, std::chrono::microseconds delay) : inner_(inner), delay_(delay) {}
  int64_t vocab_size() const override { return inner_.vocab_size(); }
  bool shares_kv_blocks() const override { return inner_.shares_kv_blocks(); }
  void execute(std::span<const RunRequest> batch, std::vector<std::span<const float>>& logits,
               std::vector<int32_t>& chosen) override {
    std::this_thread::sleep_for(delay_);
    inner_.execute(batch, logits, chosen);
  }
  void preempt(serving::RequestId id) override { inner_.preempt(id); }
  void release(serving::RequestId id) override { inner_.release(id); }

 private:
  ModelRunner& inner_;
  std::chrono::microseconds delay_;
};

// A fixture model behind an Engine (not started). Members are declared in construction order.
struct EngineHarness {
  explicit EngineHarness(EngineConfig config = default_config(), std::chrono::microseconds step_delay = {},
                         const std::string& model_name = "qwen3-f32")
      : model(Model::load(fixture_model(model_name))),
        tokenizer(Tokenizer::from_path(fixture_model(model_name))),
        backend(make_cpu_backend(1)),
        decoder(model->spec, model->weights, *backend),
        paged(make_paged_kv_runner(decoder, config.kv.num_blocks, config.kv.block_size)),
        slow(*paged, step_delay),
        engine(step_delay.count() > 0 ? static_cast<ModelRunner&>(slow) : *paged, tokenizer,
               with_model(std::move(config)), metrics) {}

  static EngineConfig default_config() {
    EngineConfig c;
    c.kv.num_blocks = 256;
    c.kv.block_size = 16;
    c.max_queue = 1024;
    return c;
  }
  EngineConfig with_model(EngineConfig c) const {
    c.context_length = model->spec.max_position_embeddings;
    for (int64_t id : model->spec.eos_token_ids) c.eos_ids.push_back(int32_t(id));
    return c;
  }

  std::unique_ptr<Model> model;
  Tokenizer tokenizer;
  std::unique_ptr<Backend> backend;
  Decoder decoder;
  std::unique_ptr<ModelRunner> paged;
  SlowRunner slow;
  Metrics metrics;
  Engine engine;
};

// Everything a request produced, gathered from its stream.
struct Collected {
  std::vector<std::vector<int32_t>> ids;  // per choice
  std::vector<std::string> text;
  std::vector<std::vector<TokenLogprob>> logprobs;
  std::vector<FinishReason> finish;
  StreamEnd end = StreamEnd::kOpen;
};

inline Collected collect(RequestStream& stream) {
  Collected c;
  const size_t n = size_t(stream.num_choices());
  c.ids.resize(n), c.text.resize(n), c.logprobs.resize(n), c.finish.resize(n, FinishReason::kNone);
  std::vector<SequenceEvent> events;
  while (stream.next(events, std::chrono::milliseconds(100))) {
    for (SequenceEvent& e : events) {
      const size_t i = size_t(e.index);
      c.ids[i].insert(c.ids[i].end(), e.token_ids.begin(), e.token_ids.end());
      c.text[i] += e.text;
      c.logprobs[i].insert(c.logprobs[i].end(), e.logprobs.begin(), e.logprobs.end());
      if (e.finish != FinishReason::kNone) c.finish[i] = e.finish;
    }
    events.clear();
  }
  c.end = stream.end();
  return c;
}

// Polls `condition` until it holds or `timeout` passes.
inline bool eventually(const std::function<bool()>& condition,
                       std::chrono::milliseconds timeout = std::chrono::milliseconds(5000)) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return condition();
}

// ---- a raw HTTP/1.1 client ----

struct HttpReply {
  int status = 0;
  std::map<std::string, std::string> headers;  // lower-case names
  std::string body;                            // de-chunked
};

class RawConnection {
 public:
  explicit RawConnection(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(uint16_t(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) close_now();
  }
  ~RawConnection() { close_now(); }
  bool ok() const { return fd_ >= 0; }
  void close_now() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  bool send_all(const std::string& data) {
    for (size_t sent = 0; sent < data.size();) {
      const ssize_t n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += size_t(n);
    }
    return true;
  }
  // Reads until `stop` holds for what arrived so far, or the peer closes.
  std::string read_until(const std::function<bool(const std::string&)>& stop) {
    std::string data;
    char buf[4096];
    while (!stop(data)) {
      const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) break;
      data.append(buf, size_t(n));
    }
    return data;
  }

 private:
  int fd_ = -1;
};

inline std::string http_request(const std::string& method, const std::string& path, const std::string& body = {},
                                const std::map<std::string, std::string>& headers = {}) {
  std::string r = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n";
  for (const auto& [k, v] : headers) r += k + ": " + v + "\r\n";
  if (!body.empty() || method == "POST") {
    r += "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

inline std::string dechunk(const std::string& raw) {
  std::string out;
  size_t at = 0;
  for (;;) {
    const size_t eol = raw.find("\r\n", at);
    if (eol == std::string::npos) break;
    const size_t size = std::stoul(raw.substr(at, eol - at), nullptr, 16);
    if (size == 0) break;
    out += raw.substr(eol + 2, size);
    at = eol + 2 + size + 2;
  }
  return out;
}

inline HttpReply parse_reply(const std::string& raw) {
  HttpReply r;
  const size_t head_end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || head_end == std::string::npos) return r;
  r.status = std::stoi(raw.substr(9, 3));
  size_t at = raw.find("\r\n") + 2;
  while (at < head_end) {
    const size_t eol = raw.find("\r\n", at);
    const std::string line = raw.substr(at, eol - at);
    const size_t colon = line.find(':');
    std::string name = line.substr(0, colon);
    for (char& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
    r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    at = eol + 2;
  }
  const std::string body = raw.substr(head_end + 4);
  r.body = r.headers["transfer-encoding"] == "chunked" ? dechunk(body) : body;
  return r;
}

// One request on its own connection, read to the end.
inline HttpReply fetch(int port, const std::string& method, const std::string& path, const std::string& body = {},
                       const std::map<std::string, std::string>& headers = {}) {
  RawConnection c(port);
  if (!c.ok() || !c.send_all(http_request(method, path, body, headers))) return {};
  return parse_reply(c.read_until([](const std::string&) { return false; }));
}

}  // namespace roofline::server::test
