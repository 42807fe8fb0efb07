{
  "targets": [
    {
      "target_name": "udp_batch",
      "sources": ["shared/dns/native/udp_batch.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Werror"]
    }
  ]
}
