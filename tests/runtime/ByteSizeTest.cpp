#include "TestUtil.h"

#include "runtime/io/ByteSize.h"

using namespace ckptmap;
using namespace ckptmap::test;

TEST_CASE("parseByteSize: units as HF reads them") {
  CHECK(requireValue(parseByteSize("1000")) == 1000);
  CHECK(requireValue(parseByteSize("0")) == 0);
  CHECK(requireValue(parseByteSize("5GB")) == 5'000'000'000ull);
  CHECK(requireValue(parseByteSize("500MB")) == 500'000'000ull);
  CHECK(requireValue(parseByteSize("10KB")) == 10'000ull);
  CHECK(requireValue(parseByteSize("2TB")) == 2'000'000'000'000ull);
  CHECK(requireValue(parseByteSize("2GiB")) == 2147483648ull);
  CHECK(requireValue(parseByteSize("3MiB")) == 3145728ull);
  CHECK(requireValue(parseByteSize("1KiB")) == 1024ull);
  CHECK(requireValue(parseByteSize("1TiB")) == 1099511627776ull);
  CHECK(requireValue(parseByteSize("64B")) == 64ull);
  // Units are case-insensitive, except that a decimal unit's lowercase b means bits.
  CHECK(requireValue(parseByteSize("5gB")) == 5'000'000'000ull);
  CHECK(requireValue(parseByteSize("2gib")) == 2147483648ull);
  CHECK(requireValue(parseByteSize("7mIB")) == 7340032ull);
}

TEST_CASE("parseByteSize: refusals") {
  const std::string units = "': expected an integer with an optional unit (B, KB, MB, GB, TB, "
                            "KiB, MiB, GiB, TiB)";
  CHECK(errorText(parseByteSize("")) == "invalid size '" + units);
  CHECK(errorText(parseByteSize("GB")) == "invalid size 'GB" + units);
  CHECK(errorText(parseByteSize("1.5GB")) == "invalid size '1.5GB" + units);
  CHECK(errorText(parseByteSize("5 GB")) == "invalid size '5 GB" + units);
  CHECK(errorText(parseByteSize("-5GB")) == "invalid size '-5GB" + units);
  CHECK(errorText(parseByteSize("5PB")) == "invalid size '5PB" + units);
  CHECK(errorText(parseByteSize("5Gb")) ==
        "invalid size '5Gb': a lowercase 'b' means bits; write the unit with 'B' for bytes");
  CHECK(errorText(parseByteSize("5b")) ==
        "invalid size '5b': a lowercase 'b' means bits; write the unit with 'B' for bytes");
  CHECK(errorText(parseByteSize("18446744073709551616")) ==
        "size '18446744073709551616' is too large");
  CHECK(errorText(parseByteSize("20000000000GB")) == "size '20000000000GB' is too large");
  CHECK(requireValue(parseByteSize("18446744073709551615")) == 18446744073709551615ull);
}
