#include "TestUtil.h"

#include "runtime/io/Json.h"

using namespace ckptmap;
using namespace ckptmap::test;

TEST_CASE("readJsonFile: fixture config, missing, invalid, duplicate keys") {
  nlohmann::json config =
      requireValue(readJsonFile(fixture("hf/deepseek_v3/hub/config.json")));
  CHECK(config["hidden_size"] == 64);
  CHECK(config["vocab_size"] == 512);

  TempDir dir;
  CHECK(errorText(readJsonFile(dir / "config.json")) ==
        dir / "config.json" + ": cannot read: No such file or directory");
  CHECK(errorText(readJsonFile(dir.path())) == dir.path() + ": cannot read: Is a directory");
  writeFile(dir / "bad.json", "{\"a\": 1,\n \"b\": tru}");
  CHECK(errorText(readJsonFile(dir / "bad.json")) ==
        dir / "bad.json" + ": not valid JSON at byte 19: syntax error while parsing value - "
                           "invalid literal; last read: '\"b\": tru}'");
  // Well-formed, but a number no double holds: an error with its position, not an abort.
  writeFile(dir / "big.json", "{\"hidden_size\": 64,\n \"rope_theta\": 1e400}");
  CHECK(errorText(readJsonFile(dir / "big.json")) ==
        dir / "big.json" + ": not valid JSON at byte 40: number overflow parsing '1e400'");
  writeFile(dir / "dup.json", R"({"a": {"b": [{"c": 1, "c": 2}]}})");
  CHECK(errorText(readJsonFile(dir / "dup.json")) ==
        dir / "dup.json" + ": duplicate key 'c' in /a/b/0");
  writeFile(dir / "dup.json", R"({"a": 1, "a": 1})");
  CHECK(errorText(readJsonFile(dir / "dup.json")) == dir / "dup.json" + ": duplicate key 'a' in /");
  // The same key in different objects is no duplicate.
  writeFile(dir / "ok.json", R"({"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 1}, {"x": 2}]})");
  CHECK(requireValue(readJsonFile(dir / "ok.json"))["c"][1]["x"] == 2);
}
