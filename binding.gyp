{
  # The build, stated once (STYLE.md): NAPI_VERSION 9 (Node >= 20.3), C++ exceptions on through
  # node-addon-api's documented `node_addon_api_except` target (doc/setup.md), -Wall -Wextra,
  # hidden visibility. CI passes --werror=1. CMakeLists.txt states the same for cmake-js.
  "variables": {
    "werror%": 0,
    "asan%": 0,
    # Test fixtures are built only in a checkout (the published package has no test/ folder).
    "with_fixtures%": "<!(node -p \"require('fs').existsSync('test/fixtures/heap_fixture.cc') ? 1 : 0\")"
  },
  "target_defaults": {
    "defines": [
      "NAPI_VERSION=9",
      "NODE_ADDON_API_DISABLE_DEPRECATED",
      "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
    ],
    "dependencies": [
      "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"
    ],
    "cflags": ["-Wall", "-Wextra", "-fvisibility=hidden"],
    "cflags_c": ["-std=gnu11"],
    "cflags_cc": ["-std=gnu++17"],
    "libraries": ["-ldl", "-lpthread"],
    "conditions": [
      ["werror==1", { "cflags": ["-Werror"] }],
      # ASan+UBSan (README "Building and testing": scripts/asan-test loads the addon into an
      # uninstrumented node with libasan preloaded). UBSan aborts on its first report
      # (-fno-sanitize-recover) so a test run cannot pass over one.
      ["asan==1", {
        "cflags": ["-fsanitize=address,undefined", "-fno-sanitize-recover=undefined", "-fno-omit-frame-pointer", "-g"],
        "ldflags": ["-fsanitize=address,undefined"]
      }]
    ]
  },
  "targets": [
    {
      "target_name": "allocscope",
      "sources": [
        "native/probe/allocator_detect.c",
        "native/probe/glibc_probe.c",
        "native/probe/glibc_census.c",
        "native/probe/jemalloc_probe.c",
        "native/probe/tcmalloc_probe.c",
        "native/probe/mimalloc_probe.c",
        "native/probe/process_probe.c",
        "native/probe/sample.c",
        "native/addon/addon.cc",
        "native/addon/sample_binding.cc",
        "native/addon/glibc_binding.cc",
        "native/addon/jemalloc_binding.cc",
        "native/addon/tcmalloc_binding.cc",
        "native/addon/mimalloc_binding.cc",
        "native/addon/socket_binding.cc"
      ]
    }
  ],
  "conditions": [
    ["OS=='linux'", {
      "targets": [
        {
          # The preload agent: plain C, the same probes, no Node. -z nodelete: never unloaded.
          "target_name": "allocscope_agent",
          "type": "shared_library",
          "product_name": "allocscope_agent",
          "product_prefix": "lib",
          "sources": [
            "native/probe/allocator_detect.c",
            "native/probe/glibc_probe.c",
            "native/probe/glibc_census.c",
            "native/probe/jemalloc_probe.c",
            "native/probe/tcmalloc_probe.c",
            "native/probe/mimalloc_probe.c",
            "native/probe/process_probe.c",
            "native/probe/sample.c",
            "native/agent/wire.c",
            "native/agent/agent.c"
          ],
          "cflags": ["-fPIC"],
          "ldflags": ["-Wl,-z,nodelete"],
          "libraries": ["-lm"]
        },
        {
          # The attach injector (native/inject/inject.c): x86_64 only; elsewhere attach uses gdb.
          "target_name": "allocscope_inject",
          "type": "executable",
          "conditions": [["target_arch!='x64'", { "type": "none", "sources!": ["native/inject/inject.c", "native/inject/caves.c"] }]],
          "sources": ["native/inject/inject.c", "native/inject/caves.c"],
          "cflags": ["-O2"]
        },
        {
          # The demo's example server (`allocscope demo`): shipped and built with the package.
          "target_name": "demo_server",
          "type": "executable",
          "sources": ["native/demo-server/demo_server.c"],
          "cflags": ["-O2"],
          "libraries": ["-lm", "-lpthread"]
        }
      ]
    }],
    ["with_fixtures==1", {
      "targets": [
        {
          "target_name": "heap_fixture",
          "sources": ["test/fixtures/heap_fixture.cc"]
        },
        {
          # A jemalloc behind je_ / _rjem_ names (test/fixtures/je_prefixed.cc): one source, two builds.
          "target_name": "je_prefixed",
          "sources": ["test/fixtures/je_prefixed.cc"],
          "defines": ["JE_PREFIX=je_"]
        },
        {
          "target_name": "rjem_prefixed",
          "sources": ["test/fixtures/je_prefixed.cc"],
          "defines": ["JE_PREFIX=_rjem_"]
        },
        {
          "target_name": "inject_target",
          "type": "executable",
          "sources": ["test/fixtures/inject_target.c"]
        },
        {
          "target_name": "heap_workload",
          "type": "executable",
          "sources": ["test/fixtures/heap_workload.c"]
        },
        {
          "target_name": "single_host",
          "type": "executable",
          "sources": ["test/fixtures/single_host.c"]
        }
      ]
    }]
  ]
}
