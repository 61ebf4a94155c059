// jemalloc: raw mallctl by name (size-aware), per-bin walk, malloc_stats_print, purge.
#include <cstring>
#include <string>

#include "bindings.h"

extern "C" {
#include "../probe/jemalloc_probe.h"
}

namespace allocscope {

Napi::Value JemallocReadAny(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  uint64_t bits = 0;
  size_t size = 0;
  int rc = asp_je_read_any(name.c_str(), &bits, &size);
  Napi::Object out = Napi::Object::New(env);
  out.Set("errno", rc);
  if (rc == 0) {
    out.Set("size", static_cast<double>(size));
    out.Set("bits", Napi::BigInt::New(env, bits));
  }
  return out;
}

Napi::Value JemallocReadString(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  char value[1024];
  int rc = asp_je_read_string(name.c_str(), value, sizeof(value));
  Napi::Object out = Napi::Object::New(env);
  out.Set("errno", rc);
  if (rc == 0) out.Set("value", value);
  return out;
}

Napi::Value JemallocWrite(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = info[0].As<Napi::String>().Utf8Value();
  std::string kind = info[1].As<Napi::String>().Utf8Value();
  int rc;
  if (kind == "void") {
    rc = asp_je_write_void(name.c_str());
  } else if (kind == "string") {
    std::string value = info[2].As<Napi::String>().Utf8Value();
    rc = asp_je_write_string(name.c_str(), value.c_str());
  } else {
    bool lossless = false;
    uint64_t bits = info[2].As<Napi::BigInt>().Uint64Value(&lossless);
    size_t size = static_cast<size_t>(info[3].As<Napi::Number>().Uint32Value());
    rc = asp_je_write_sized(name.c_str(), bits, size);
  }
  return Napi::Number::New(env, rc);
}

Napi::Value JemallocBins(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  // jemalloc 5.3 has 36 small bins with the default lg_quantum; 256 covers any configuration.
  static const unsigned kMaxBins = 256;
  asp_je_bin bins[kMaxBins];
  unsigned count = 0;
  int rc = asp_je_read_bins(bins, kMaxBins, &count);
  Napi::Object out = Napi::Object::New(env);
  out.Set("errno", rc);
  if (rc != 0) return out;
  unsigned n = count < kMaxBins ? count : kMaxBins;
  Napi::Array list = Napi::Array::New(env, n);
  for (unsigned j = 0; j < n; j++) {
    Napi::Object b = Napi::Object::New(env);
    b.Set("size", static_cast<double>(bins[j].size));
    b.Set("nregs", static_cast<double>(bins[j].nregs));
    b.Set("slab_size", static_cast<double>(bins[j].slab_size));
    b.Set("curregs", static_cast<double>(bins[j].curregs));
    b.Set("curslabs", static_cast<double>(bins[j].curslabs));
    b.Set("nonfull_slabs", static_cast<double>(bins[j].nonfull_slabs));
    list.Set(j, b);
  }
  out.Set("bins", list);
  return out;
}

namespace {
void AppendText(void* opaque, const char* text) { static_cast<std::string*>(opaque)->append(text); }
}  // namespace

Napi::Value JemallocStatsPrint(const Napi::CallbackInfo& info) {
  std::string opts = info[0].As<Napi::String>().Utf8Value();
  std::string text;
  if (asp_je_stats_print(AppendText, &text, opts.c_str()) != 0) return info.Env().Null();
  return Napi::String::New(info.Env(), text);
}

Napi::Value JemallocPurge(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), asp_je_purge());
}

}  // namespace allocscope
