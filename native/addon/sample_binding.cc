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
  out.Set("mallocAllocator", asp_allocator_name(a.malloc_kind));
  return out;
}

Napi::Value SampleSlotNames(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array names = Napi::Array::New(env, ASP_SAMPLE_SLOT_COUNT);
  for (uint32_t i = 0; i < ASP_SAMPLE_SLOT_COUNT; i++) names.Set(i, asp_sample_slot_names[i]);
  return names;
}

namespace {

// The slot array of the synchronous path, bound once per env (main thread and each worker have
// their own). Binding resolves the typed array once: each sampleBound call then passes two small
// integers, so the only work Node adds to asp_sample() is the N-API call itself. Resolving a
// typed-array argument per call (napi_get_typedarray_info: the type check chain and the buffer
// lookup) was about two thirds of the ~0.5 us the binding used to add (scripts/bench/RESULTS.md).
struct BoundSlots {
  napi_ref array = nullptr;  // strong: the array and its buffer are not collected while bound
  double* data = nullptr;
};

// The caller (lib/binding.ts) rebinds whenever it passes another array, or one whose buffer was
// detached (length 0), so data always points into the live array it last bound.
napi_value BindSlots(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void* state_ptr = nullptr;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, &state_ptr) != napi_ok) return nullptr;
  auto* state = static_cast<BoundSlots*>(state_ptr);
  bool is_typedarray = false;
  napi_typedarray_type type;
  size_t length = 0;
  void* data = nullptr;
  if (argc < 1 || napi_is_typedarray(env, argv[0], &is_typedarray) != napi_ok || !is_typedarray ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array) {
    napi_throw_type_error(env, nullptr, "bindSlots: expected a Float64Array");
    return nullptr;
  }
  if (length < ASP_SAMPLE_SLOT_COUNT || data == nullptr) {
    napi_throw_range_error(env, nullptr, "bindSlots: slot array too short (or its buffer was detached)");
    return nullptr;
  }
  napi_ref array = nullptr;
  if (napi_create_reference(env, argv[0], 1, &array) != napi_ok) return nullptr;
  if (state->array != nullptr) napi_delete_reference(env, state->array);
  state->array = array;
  state->data = static_cast<double*>(data);
  return nullptr;
}

// The hot path: no typed array, no validation beyond what N-API does, no allocation.
napi_value SampleBound(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  void* state_ptr = nullptr;
  napi_get_cb_info(env, info, &argc, argv, nullptr, &state_ptr);
  auto* state = static_cast<BoundSlots*>(state_ptr);
  if (state->data == nullptr) {
    napi_throw_error(env, nullptr, "sampleBound: call bindSlots first");
    return nullptr;
  }
  int32_t kind = 0, flags = 0;
  napi_get_value_int32(env, argv[0], &kind);
  napi_get_value_int32(env, argv[1], &flags);
  asp_sample(static_cast<asp_allocator_kind>(kind), flags, state->data);
  return nullptr;  // undefined
}

}  // namespace

// The env's BoundSlots lives as long as the env (instance data, freed at teardown). Its
// reference is left to Node, which deletes every reference still alive when the env goes.
void ExportBoundSampling(Napi::Env env, Napi::Object exports) {
  auto* state = new BoundSlots();
  env.SetInstanceData<BoundSlots>(state);
  napi_value fn = nullptr;
  NAPI_THROW_IF_FAILED_VOID(env, napi_create_function(env, "bindSlots", NAPI_AUTO_LENGTH, BindSlots, state, &fn));
  exports.Set("bindSlots", Napi::Value(env, fn));
  NAPI_THROW_IF_FAILED_VOID(env, napi_create_function(env, "sampleBound", NAPI_AUTO_LENGTH, SampleBound, state, &fn));
  exports.Set("sampleBound", Napi::Value(env, fn));
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
