// mimalloc: mi_process_info, mi_collect.
#include "bindings.h"

extern "C" {
#include "../probe/mimalloc_probe.h"
}

namespace allocscope {

Napi::Value MimallocProcessInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  asp_mi_info p;
  if (asp_mi_process_info(&p) != 0) return env.Null();
  Napi::Object out = Napi::Object::New(env);
  out.Set("elapsed_msecs", static_cast<double>(p.elapsed_msecs));
  out.Set("user_msecs", static_cast<double>(p.user_msecs));
  out.Set("system_msecs", static_cast<double>(p.system_msecs));
  out.Set("current_rss", static_cast<double>(p.current_rss));
  out.Set("peak_rss", static_cast<double>(p.peak_rss));
  out.Set("current_commit", static_cast<double>(p.current_commit));
  out.Set("peak_commit", static_cast<double>(p.peak_commit));
  out.Set("page_faults", static_cast<double>(p.page_faults));
  return out;
}

Napi::Value MimallocCollect(const Napi::CallbackInfo& info) {
  bool force = info[0].As<Napi::Boolean>().Value();
  return Napi::Boolean::New(info.Env(), asp_mi_collect(force ? 1 : 0) == 0);
}

}  // namespace allocscope
