#include "worker/gloo_communicator.h"

#include <net/if.h>
#include <netdb.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <map>
#include <mutex>
#include <new>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gloo/allgatherv.h"
#include "gloo/allreduce_ring.h"
#include "gloo/broadcast.h"
#include "gloo/common/error.h"
#include "gloo/common/logging.h"
#include "gloo/rendezvous/context.h"
#include "gloo/rendezvous/prefix_store.h"
#include "gloo/transport/tcp/device.h"

namespace tpserve {
namespace {

// All-reduce runs over a ring built for a fixed element count, so counts are
// rounded up to a power-of-two bucket (zero padding adds nothing to a sum)
// and long arrays go through in kMaxRingFloats chunks. That bounds the
// number of rings (and their pinned memory, 3 buffers each) to
// log2(kMaxRingFloats / kMinRingFloats) + 1 = 9 whatever sizes callers use,
// while decode-sized calls (hidden size floats) still hit a ready ring.
constexpr size_t kMinRingFloats = 256;
constexpr size_t kMaxRingFloats = size_t{1} << 16;

// Gather and broadcast objects are keyed by exact shape. The engine uses a
// handful of shapes (logits per step, a few control messages); past this
// many the cache is dropped and rebuilt, which every rank does at the same
// call because they issue identical call sequences.
constexpr size_t kMaxCachedShapes = 16;

// Gloo tags separate concurrent operations; ours are serialized, the tags
// only keep the two unbound-buffer collectives visibly apart.
constexpr uint32_t kGatherTag = 1;
constexpr uint32_t kBroadcastTag = 2;

size_t RingBucket(size_t count) {
  size_t bucket = kMinRingFloats;
  while (bucket < count) bucket <<= 1;
  return bucket;
}

// Maps what Gloo threw to a status. Gloo reports timeouts as IoException
// with "Timed out" / "timeout" in the text, peer loss as IoException or
// EnforceNotMet (socket errors are GLOO_ENFORCE'd in places).
absl::Status FromGlooError(const std::string& what, const std::string& msg) {
  std::string text = absl::StrCat("Gloo ", what, " failed: ", msg);
  const std::string lower = absl::AsciiStrToLower(msg);
  if (absl::StrContains(lower, "timed out") ||
      absl::StrContains(lower, "timeout")) {
    return absl::DeadlineExceededError(text);
  }
  return absl::UnavailableError(text);
}

// Runs `fn`, turning every exception into a status: nothing may escape.
template <typename Fn>
absl::Status Guarded(const std::string& what, Fn&& fn) {
  try {
    fn();
    return absl::OkStatus();
  } catch (const gloo::IoException& e) {
    return FromGlooError(what, e.what());
  } catch (const gloo::EnforceNotMet& e) {
    return FromGlooError(what, e.what());
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        absl::StrCat("Gloo ", what, ": out of memory"));
  } catch (const std::exception& e) {
    return FromGlooError(what, e.what());
  } catch (...) {
    return FromGlooError(what, "unknown exception");
  }
}

// A failed collective leaves the ranks out of step: say so, for the
// coordinator's logs.
absl::Status Broken(absl::Status s) {
  return absl::Status(s.code(),
                      absl::StrCat(s.message(),
                                   "; the worker group is broken and must be "
                                   "rebuilt"));
}

// Gloo's CreateDevice crashes (rather than throws) on some resolver
// failures, so the address is checked here first.
absl::Status CheckAddress(const GlooOptions& options) {
  if (!options.interface.empty()) {
    if (if_nametoindex(options.interface.c_str()) == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Gloo: no network interface named '", options.interface, "'"));
    }
    return absl::OkStatus();
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rv =
      getaddrinfo(options.hostname.c_str(), nullptr, &hints, &result);
  if (result != nullptr) freeaddrinfo(result);
  if (rv != 0 || result == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("Gloo: cannot resolve hostname '", options.hostname,
                     "': ", rv != 0 ? gai_strerror(rv) : "no addresses"));
  }
  return absl::OkStatus();
}

// Gloo writes to sockets with writev(), so a write to a peer that has died
// raises SIGPIPE, whose default action kills this rank. Ignoring it (only
// when nobody installed a handler) turns that into EPIPE, which Gloo reports
// as an exception and we as a status.
void IgnoreSigpipeIfDefault() {
  struct sigaction old {};
  if (sigaction(SIGPIPE, nullptr, &old) != 0) return;
  if (old.sa_handler != SIG_DFL) return;
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  sigemptyset(&ignore.sa_mask);
  sigaction(SIGPIPE, &ignore, nullptr);
}

}  // namespace

struct GlooCommunicator::State {
  // A ring all-reduce over `buffer` (bucket floats); built once per bucket.
  struct Ring {
    std::vector<float> buffer;
    std::unique_ptr<gloo::AllreduceRing<float>> algorithm;
  };
  // An all-gather of one exact `counts` shape over owned buffers.
  struct Gather {
    std::vector<size_t> counts;
    std::vector<float> in;
    std::vector<float> out;
    std::unique_ptr<gloo::AllgathervOptions> options;
  };
  // A broadcast of `bytes` bytes from `root` over an owned buffer.
  struct Bcast {
    size_t bytes = 0;
    int root = 0;
    std::vector<uint8_t> buffer;
    std::unique_ptr<gloo::BroadcastOptions> options;
  };

  // Declared first so they are destroyed last: the algorithms and options
  // below hold buffers registered with the context's pairs.
  std::shared_ptr<gloo::transport::Device> device;
  std::shared_ptr<gloo::rendezvous::Context> context;

  std::mutex mu;
  bool broken = false;  // Guarded by mu.
  // Keyed by bucket size. Guarded by mu. std::map nodes never move, so the
  // buffer pointers the rings hold stay valid.
  std::map<size_t, Ring> rings;
  std::vector<std::unique_ptr<Gather>> gathers;  // Guarded by mu.
  std::vector<std::unique_ptr<Bcast>> bcasts;    // Guarded by mu.

  ~State() {
    // Algorithms and options first, then pairs, then the device's loop.
    rings.clear();
    gathers.clear();
    bcasts.clear();
    context.reset();
    device.reset();
  }

  Ring& RingFor(size_t bucket) {
    auto it = rings.find(bucket);
    if (it != rings.end()) return it->second;
    Ring& ring = rings[bucket];
    ring.buffer.assign(bucket, 0.0f);
    // Builds the pair buffers: a handshake with both ring neighbours, which
    // consumes context slots in the same order on every rank because every
    // rank asks for the same buckets in the same order.
    ring.algorithm = std::make_unique<gloo::AllreduceRing<float>>(
        context, std::vector<float*>{ring.buffer.data()},
        static_cast<int>(bucket));
    return ring;
  }
};

GlooCommunicator::GlooCommunicator(int rank, int world,
                                   std::chrono::milliseconds timeout,
                                   std::unique_ptr<State> state)
    : rank_(rank), world_(world), timeout_(timeout), state_(std::move(state)) {}

GlooCommunicator::~GlooCommunicator() = default;

absl::StatusOr<std::unique_ptr<GlooCommunicator>> GlooCommunicator::Create(
    gloo::rendezvous::Store& store, const std::string& prefix, int rank,
    int world, const GlooOptions& options) {
  if (world < 1 || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(
        absl::StrCat("Gloo: rank ", rank, " of world ", world, " is invalid"));
  }
  if (options.timeout.count() <= 0) {
    return absl::InvalidArgumentError("Gloo: timeout must be positive");
  }
  if (world == 1) {
    // Nothing to exchange: collectives are local copies or no-ops.
    return std::unique_ptr<GlooCommunicator>(
        new GlooCommunicator(rank, world, options.timeout, nullptr));
  }
  if (options.hostname.empty() && options.interface.empty()) {
    return absl::InvalidArgumentError(
        "Gloo: set GlooOptions::hostname or GlooOptions::interface");
  }
  absl::Status s = CheckAddress(options);
  if (!s.ok()) return s;
  IgnoreSigpipeIfDefault();

  auto state = std::make_unique<State>();
  s = Guarded("device creation", [&] {
    gloo::transport::tcp::attr attr;
    if (!options.interface.empty()) {
      attr.iface = options.interface;
    } else {
      attr.hostname = options.hostname;
    }
    state->device = gloo::transport::tcp::CreateDevice(attr);
  });
  if (!s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(s.message(), " (hostname '", options.hostname,
                     "', interface '", options.interface, "')"));
  }
  s = Guarded(absl::StrCat("rendezvous of rank ", rank, " of ", world,
                           " under prefix '", prefix, "'"),
              [&] {
                state->context =
                    std::make_shared<gloo::rendezvous::Context>(rank, world);
                // Set before connecting: pairs copy the context's timeout
                // when they are created, and it bounds the store waits.
                state->context->setTimeout(options.timeout);
                gloo::rendezvous::PrefixStore prefixed(prefix, store);
                state->context->connectFullMesh(prefixed, state->device);
              });
  if (!s.ok()) return s;
  return std::unique_ptr<GlooCommunicator>(
      new GlooCommunicator(rank, world, options.timeout, std::move(state)));
}

bool GlooCommunicator::broken() const {
  if (state_ == nullptr) return false;
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->broken;
}

namespace {

absl::Status BrokenError() {
  return absl::FailedPreconditionError(
      "Gloo communicator failed earlier; the worker group must be rebuilt");
}

}  // namespace

absl::Status GlooCommunicator::AllReduceSum(float* data, size_t count) {
  if (count == 0 || world_ == 1) return absl::OkStatus();
  if (data == nullptr) {
    return absl::InvalidArgumentError("AllReduceSum: null data");
  }
  State& st = *state_;
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.broken) return BrokenError();
  absl::Status s = Guarded(
      absl::StrCat("all-reduce of ", count, " floats on rank ", rank_), [&] {
        for (size_t done = 0; done < count;) {
          const size_t n = std::min(count - done, kMaxRingFloats);
          State::Ring& ring = st.RingFor(RingBucket(n));
          float* buf = ring.buffer.data();
          std::memcpy(buf, data + done, n * sizeof(float));
          std::fill(buf + n, buf + ring.buffer.size(), 0.0f);
          ring.algorithm->run();
          std::memcpy(data + done, buf, n * sizeof(float));
          done += n;
        }
      });
  if (!s.ok()) {
    st.broken = true;
    return Broken(s);
  }
  return s;
}

absl::Status GlooCommunicator::AllGatherV(const float* in,
                                          absl::Span<const size_t> counts,
                                          float* out) {
  if (counts.size() != static_cast<size_t>(world_)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AllGatherV: ", counts.size(), " counts for a world of ", world_));
  }
  size_t total = 0;
  for (size_t c : counts) total += c;
  const size_t mine = counts[rank_];
  if ((mine > 0 && in == nullptr) || (total > 0 && out == nullptr)) {
    return absl::InvalidArgumentError("AllGatherV: null buffer");
  }
  if (world_ == 1) {
    if (mine > 0 && in != out) std::memmove(out, in, mine * sizeof(float));
    return absl::OkStatus();
  }
  if (total == 0) return absl::OkStatus();
  State& st = *state_;
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.broken) return BrokenError();
  absl::Status s = Guarded(
      absl::StrCat("all-gather of ", total, " floats on rank ", rank_), [&] {
        State::Gather* g = nullptr;
        for (auto& cached : st.gathers) {
          if (absl::MakeConstSpan(cached->counts) == counts) {
            g = cached.get();
            break;
          }
        }
        if (g == nullptr) {
          if (st.gathers.size() >= kMaxCachedShapes) st.gathers.clear();
          auto fresh = std::make_unique<State::Gather>();
          fresh->counts.assign(counts.begin(), counts.end());
          // One spare element keeps data() non-null for a rank with no
          // share; Gloo then sends nothing from it.
          fresh->in.assign(std::max<size_t>(mine, 1), 0.0f);
          fresh->out.assign(total, 0.0f);
          fresh->options = std::make_unique<gloo::AllgathervOptions>(
              std::shared_ptr<gloo::Context>(st.context));
          fresh->options->setInput<float>(fresh->in.data(), mine);
          fresh->options->setOutput<float>(fresh->out.data(), fresh->counts);
          fresh->options->setTag(kGatherTag);
          g = fresh.get();
          st.gathers.push_back(std::move(fresh));
        }
        if (mine > 0) std::memcpy(g->in.data(), in, mine * sizeof(float));
        gloo::allgatherv(*g->options);
        std::memcpy(out, g->out.data(), total * sizeof(float));
      });
  if (!s.ok()) {
    st.broken = true;
    return Broken(s);
  }
  return s;
}

absl::Status GlooCommunicator::Broadcast(void* data, size_t count, int root) {
  if (root < 0 || root >= world_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Broadcast: root ", root, " is not a rank of a world of ", world_));
  }
  if (count == 0 || world_ == 1) return absl::OkStatus();
  if (data == nullptr) {
    return absl::InvalidArgumentError("Broadcast: null data");
  }
  State& st = *state_;
  std::lock_guard<std::mutex> lock(st.mu);
  if (st.broken) return BrokenError();
  absl::Status s = Guarded(
      absl::StrCat("broadcast of ", count, " bytes from rank ", root,
                   " on rank ", rank_),
      [&] {
        State::Bcast* b = nullptr;
        for (auto& cached : st.bcasts) {
          if (cached->bytes == count && cached->root == root) {
            b = cached.get();
            break;
          }
        }
        if (b == nullptr) {
          if (st.bcasts.size() >= kMaxCachedShapes) st.bcasts.clear();
          auto fresh = std::make_unique<State::Bcast>();
          fresh->bytes = count;
          fresh->root = root;
          fresh->buffer.assign(count, 0);
          fresh->options = std::make_unique<gloo::BroadcastOptions>(
              std::shared_ptr<gloo::Context>(st.context));
          // Only an output: the root sends from it, the others receive
          // into it.
          fresh->options->setOutput<uint8_t>(fresh->buffer.data(), count);
          fresh->options->setRoot(root);
          fresh->options->setTag(kBroadcastTag);
          b = fresh.get();
          st.bcasts.push_back(std::move(fresh));
        }
        if (rank_ == root) std::memcpy(b->buffer.data(), data, count);
        gloo::broadcast(*b->options);
        if (rank_ != root) std::memcpy(data, b->buffer.data(), count);
      });
  if (!s.ok()) {
    st.broken = true;
    return Broken(s);
  }
  return s;
}

}  // namespace tpserve
