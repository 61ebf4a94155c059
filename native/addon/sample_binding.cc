// Allocator detection and the combined sample (allocator totals + RSS, one timestamp).
#include <cstring>

#include "bindings.h"

extern "C" {
#include "../probe/allocator_detect.h"
#include "../probe/sample.h"
}

namespace allocscope {

Napi::Value Detect(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  asp_allocator a;
  asp_detect_allocator(&a);
  Napi::Object out = Napi::Object::New(env);
  out.Set("kind", static_cast<double>(a.kind));
  out.Set("name", asp_allocator_name(a.kind));
  out.Set("version", a.version);
  out.Set("detectedBy", a.detected_by);
  out.Set("mallocLibrary", a.malloc_library);
  out.Set("symbolPrefix", a.symbol_prefix);
  return out;
}

Napi::Value SampleSlotNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array names = Napi::Array::New(env, ASP_SAMPLE_SLOT_COUNT);
  for (uint32_t i = 0; i < ASP_SAMPLE_SLOT_COUNT; i++) names.Set(i, asp_sample_slot_names[i]);
  return names;
}

Napi::Value SampleInto(const Napi::CallbackInfo& info) {
  Napi::Float64Array slots = info[0].As<Napi::Float64Array>();
  if (slots.ElementLength() < ASP_SAMPLE_SLOT_COUNT) {
    throw Napi::RangeError::New(info.Env(), "sampleInto: slot array too short");
  }
  int kind = info[1].As<Napi::Number>().Int32Value();
  int flags = info[2].As<Napi::Number>().Int32Value();
  asp_sample(static_cast<asp_allocator_kind>(kind), flags, slots.Data());
  return info.Env().Undefined();
}

namespace {

// Expensive samples (glibc mallinfo2 walks every free chunk under each arena's lock) run on a
// libuv worker so the event loop does not stall for them (DESIGN.md "Cost classes").
class SampleWorker : public Napi::AsyncWorker {
 public:
  SampleWorker(Napi::Env env, int kind, int flags)
      : Napi::AsyncWorker(env), deferred_(Napi::Promise::Deferred::New(env)), kind_(kind), flags_(flags) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override { asp_sample(static_cast<asp_allocator_kind>(kind_), flags_, slots_); }
  void OnOK() override {
    Napi::Float64Array out = Napi::Float64Array::New(Env(), ASP_SAMPLE_SLOT_COUNT);
    std::memcpy(out.Data(), slots_, sizeof(slots_));
    deferred_.Resolve(out);
  }
  void OnError(const Napi::Error& error) override { deferred_.Reject(error.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  int kind_;
  int flags_;
  double slots_[ASP_SAMPLE_SLOT_COUNT];
};

}  // namespace

Napi::Value SampleAsync(const Napi::CallbackInfo& info) {
  int kind = info[0].As<Napi::Number>().Int32Value();
  int flags = info[1].As<Napi::Number>().Int32Value();
  auto* worker = new SampleWorker(info.Env(), kind, flags);
  Napi::Promise promise = worker->Promise();
  worker->Queue();
  return promise;
}

}  // namespace allocscope
