#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "runtime/exec/Progress.h"

int main(int argc, char **argv) {
  // No progress line in test logs.
  ckptmap::ProgressDisplay::setQuiet(true);
  doctest::Context context(argc, argv);
  return context.run();
}
