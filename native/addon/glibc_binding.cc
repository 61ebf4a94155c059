// glibc ptmalloc: mallinfo2, malloc_info, malloc_trim, and the lock-free census of free lists.
#include <chrono>
#include <cstdlib>
#include <string>

#include "bindings.h"

extern "C" {
#include "../probe/glibc_census.h"
#include "../probe/glibc_probe.h"
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

}  // namespace

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
