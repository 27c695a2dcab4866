#include "edgecv/json.h"

#include "check.h"

using edgecv::ErrorKind;
using edgecv::json::Value;

int main() {
  Value v = Value::Parse(R"({"a": [1, 2.5, -3e2], "s": "x\"y\u00e9\n", "b": true, "n": null,
                             "o": {"k": {}}})");
  CHECK(v.At("a").AsArray().size() == 3);
  CHECK(v.At("a").AsArray()[1].AsNumber() == 2.5);
  CHECK(v.At("a").AsArray()[2].AsInt() == -300);
  CHECK(v.At("s").AsString() == "x\"y\xc3\xa9\n");
  CHECK(v.At("b").AsBool());
  CHECK(v.At("n").is_null());
  CHECK(v.At("o").At("k").AsObject().empty());
  CHECK(v.Find("missing") == nullptr);
  CHECK(edgecv::json::AsShape(Value::Parse("[1, 3, 224, 224]")).at(3) == 224);

  EXPECT_THROW(ErrorKind::kInvalidArtifact, "missing key 'zz'", v.At("zz"));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "expected string", v.At("a").AsString());
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "expected an integer", Value::Parse("1.5").AsInt());
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "unterminated string", Value::Parse("\"abc"));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "trailing", Value::Parse("{} x"));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "expected ']'", Value::Parse("[1 2]"));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "invalid number", Value::Parse("[1, --]"));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "nesting too deep",
               Value::Parse(std::string(200, '[') + std::string(200, ']')));
  EXPECT_THROW(ErrorKind::kInvalidArtifact, "negative dimension",
               edgecv::json::AsShape(Value::Parse("[-1]")));
  return Finish("test_json");
}
