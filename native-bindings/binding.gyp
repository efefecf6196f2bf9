# Built by `npm run build:native` (node-gyp rebuild --directory native-bindings).
# Needs python3, make and g++, and Node's headers (nodedir=/usr on Debian's
# nodejs). No library beyond libc: nfnetlink is spoken directly with the
# kernel UAPI headers.
{
  "targets": [
    {
      "target_name": "sluice_native",
      "sources": [
        "src/addon.cc",
        "src/common.cc",
        "src/nfqueue.cc",
        "src/tun.cc",
        "src/rawsock.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": [
        "NAPI_VERSION=8",
        "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "_GNU_SOURCE"
      ],
      "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "cflags_cc": ["-std=gnu++17", "-fno-exceptions"]
    }
  ]
}
