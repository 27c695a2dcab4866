// A minimal test harness: CHECK records failures, EXPECT_THROW checks an error kind.
#pragma once

#include <cstdio>
#include <functional>
#include <string>

#include "edgecv/error.h"

inline int g_failures = 0;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      ++g_failures;                                                                 \
    }                                                                               \
  } while (0)

inline void ExpectThrow(const char* where, edgecv::ErrorKind kind, const std::string& fragment,
                        const std::function<void()>& fn) {
  try {
    fn();
    std::fprintf(stderr, "%s: expected an edgecv::Error, nothing thrown\n", where);
    ++g_failures;
  } catch (const edgecv::Error& e) {
    if (e.kind() != kind || std::string(e.what()).find(fragment) == std::string::npos) {
      std::fprintf(stderr, "%s: wrong error: %s\n", where, e.what());
      ++g_failures;
    }
  }
}

#define EXPECT_THROW(kind, fragment, ...) \
  ExpectThrow(__FILE__, kind, fragment, [&] { __VA_ARGS__; })

inline int Finish(const char* name) {
  if (g_failures)
    std::fprintf(stderr, "%s: %d failure(s)\n", name, g_failures);
  else
    std::printf("%s: ok\n", name);
  return g_failures ? 1 : 0;
}
