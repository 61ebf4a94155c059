// glibc ptmalloc: mallinfo2, malloc_info, malloc_trim, and the lock-free census of free lists.
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bindings.h"

extern "C" {
#include "../probe/glibc_census.h"
#include "../probe/glibc_probe.h"
#include "../probe/sample.h"
}

namespace allocscope {

Napi::Value GlibcMallinfo2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  asp_mallinfo2 m;
  int rc = asp_glibc_mallinfo2(&m);
  if (rc < 0) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("arena", static_cast<double>(m.arena));
  out.Set("ordblks", static_cast<double>(m.ordblks));
  out.Set("smblks", static_cast<double>(m.smblks));
  out.Set("hblks", static_cast<double>(m.hblks));
  out.Set("hblkhd", static_cast<double>(m.hblkhd));
  out.Set("usmblks", static_cast<double>(m.usmblks));
  out.Set("fsmblks", static_cast<double>(m.fsmblks));
  out.Set("uordblks", static_cast<double>(m.uordblks));
  out.Set("fordblks", static_cast<double>(m.fordblks));
  out.Set("keepcost", static_cast<double>(m.keepcost));
  out.Set("fromLegacyMallinfo", Napi::Boolean::New(env, rc == 1));
  return out;
}

Napi::Value GlibcMallocInfo(const Napi::CallbackInfo& info) {
  size_t len = 0;
  char* text = asp_glibc_malloc_info(&len);
  if (text == nullptr) return info.Env().Null();
  Napi::String out = Napi::String::New(info.Env(), text, len);
  free(text);
  return out;
}

namespace {

class MallocInfoWorker : public Napi::AsyncWorker {
 public:
  explicit MallocInfoWorker(Napi::Env env)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override {
    size_t len = 0;
    char* text = asp_glibc_malloc_info(&len);
    if (text != nullptr) {
      ok_ = true;
      xml_.assign(text, len);
      free(text);
    }
  }
  void OnOK() override {
    deferred_.Resolve(ok_ ? Napi::String::New(Env(), xml_) : Env().Null());
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  bool ok_ = false;
  std::string xml_;
};

}  // namespace

Napi::Value GlibcMallocInfoAsync(const Napi::CallbackInfo& info) {
  auto* worker = new MallocInfoWorker(info.Env());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

namespace {

struct CensusResult {
  int status = 0;
  asp_glibc_census census{};
  double ns = 0;
};

CensusResult TakeCensus(double max_chunks) {
  CensusResult result;
  auto start = std::chrono::steady_clock::now();
  result.status = asp_glibc_census_take(&result.census, static_cast<size_t>(max_chunks));
  result.ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  return result;
}

Napi::Object CensusObject(Napi::Env env, const CensusResult& result) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("status", result.status);
  out.Set("arenas", static_cast<double>(result.census.arenas));
  out.Set("arena", static_cast<double>(result.census.arena));
  out.Set("ordblks", static_cast<double>(result.census.ordblks));
  out.Set("smblks", static_cast<double>(result.census.smblks));
  out.Set("fordblks", static_cast<double>(result.census.fordblks));
  out.Set("fsmblks", static_cast<double>(result.census.fsmblks));
  out.Set("keepcost", static_cast<double>(result.census.keepcost));
  out.Set("listedChunks", static_cast<double>(asp_glibc_census_listed(&result.census)));
  out.Set("complete", Napi::Boolean::New(env, result.census.complete != 0));
  out.Set("ns", result.ns);
  return out;
}

class CensusWorker : public Napi::AsyncWorker {
 public:
  CensusWorker(Napi::Env env, double max_chunks)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), max_chunks_(max_chunks) {}
  Napi::Promise Promise() { return deferred_.Promise(); }
  void Execute() override { result_ = TakeCensus(max_chunks_); }
  void OnOK() override { deferred_.Resolve(CensusObject(Env(), result_)); }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  double max_chunks_;
  CensusResult result_;
};

// A census, then, on the same worker, the sample only if the census counted at most max_chunks
// chunks on the free lists (a mallinfo2 would walk them holding an arena's lock), or could not be
// taken at all (then the read is blind, as before the census existed). One worker hop for both:
// a hop costs the JS thread and a worker a wake-up each (cost-budget.ts decides what to do with
// the answer). A census that saw a list change under it, still under the limit, is taken again,
// up to `tries` times: its count may be low.
class GuardedSampleWorker : public Napi::AsyncWorker {
 public:
  GuardedSampleWorker(Napi::Env env, int kind, int flags, double max_chunks, int tries)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        kind_(kind),
        flags_(flags),
        max_chunks_(max_chunks),
        tries_(tries) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    double ns = 0;
    for (int attempt = 0; attempt < tries_; attempt++) {
      census_ = TakeCensus(max_chunks_ + 1);
      ns += census_.ns;
      if (census_.status != 0 || census_.census.complete || Listed() > max_chunks_) break;
    }
    census_.ns = ns;
    sampled_ = census_.status != 0 || Listed() <= max_chunks_;
    if (sampled_) asp_sample(static_cast<asp_allocator_kind>(kind_), flags_, slots_);
  }
  void OnOK() override {
    Napi::Env env = Env();
    Napi::Object out = Napi::Object::New(env);
    out.Set("census", CensusObject(env, census_));
    if (sampled_) {
      Napi::Float64Array slots = Napi::Float64Array::New(env, ASP_SAMPLE_SLOT_COUNT);
      std::memcpy(slots.Data(), slots_, sizeof(slots_));
      out.Set("slots", slots);
    } else {
      out.Set("slots", env.Null());
    }
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  double Listed() const { return static_cast<double>(asp_glibc_census_listed(&census_.census)); }

  Napi::Promise::Deferred deferred_;
  int kind_;
  int flags_;
  double max_chunks_;
  int tries_;
  CensusResult census_;
  bool sampled_ = false;
  double slots_[ASP_SAMPLE_SLOT_COUNT];
};

}  // namespace

Napi::Value GlibcGuardedSampleAsync(const Napi::CallbackInfo& info) {
  auto* worker = new GuardedSampleWorker(info.Env(), info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Number>().Int32Value(),
                                         info[2].As<Napi::Number>().DoubleValue(), info[3].As<Napi::Number>().Int32Value());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value GlibcCensus(const Napi::CallbackInfo& info) {
  return CensusObject(info.Env(), TakeCensus(info[0].As<Napi::Number>().DoubleValue()));
}

Napi::Value GlibcCensusAsync(const Napi::CallbackInfo& info) {
  auto* worker = new CensusWorker(info.Env(), info[0].As<Napi::Number>().DoubleValue());
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

Napi::Value GlibcMallocTrim(const Napi::CallbackInfo& info) {
  double pad = info[0].As<Napi::Number>().DoubleValue();
  return Napi::Number::New(info.Env(), asp_glibc_malloc_trim(static_cast<size_t>(pad)));
}

}  // namespace allocscope
