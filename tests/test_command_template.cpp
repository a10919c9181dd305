// The shell job's command template: splitting as a shell would without expanding, and placeholders.
#include <jobs/command_template.hpp>

#include <amorsize/error.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using namespace amorsize::jobs;
using Catch::Matchers::Contains;
using args = std::vector<std::string>;

namespace {

/// The arguments of task `number` on slot `slot` for `line`.
args run(const std::string& command, const std::string& line, std::size_t number = 1, int slot = 1) {
  return expand_arguments(parse_command_template(command), {line, number, slot});
}

}  // namespace

TEST_CASE("a template splits as a shell would but expands nothing", "[command_template]") {
  CHECK(run("gzip -9 {}", "a.txt") == args{"gzip", "-9", "a.txt"});
  CHECK(run("  gzip\t -9   {}  ", "a.txt") == args{"gzip", "-9", "a.txt"});
  // sh -c "sleep 1; echo {}" is three arguments; the ; and the $ stay text.
  CHECK(run("sh -c \"sleep 1; echo {}\"", "x") == args{"sh", "-c", "sleep 1; echo x"});
  CHECK(run("echo '$HOME' \"$HOME\" \\$HOME *", "x") == args{"echo", "$HOME", "$HOME", "$HOME", "*", "x"});
  CHECK(run("printf '%s\\n' a\\ b", "x") == args{"printf", "%s\\n", "a b", "x"});
  CHECK(run("echo \"a \\\"quoted\\\" \\\\ word\"", "x") == args{"echo", "a \"quoted\" \\ word", "x"});
  CHECK(run("echo '' \"\"", "x") == args{"echo", "", "", "x"});  // quotes make empty arguments
  CHECK(run("awk '{print $1}' {}", "f") == args{"awk", "{print $1}", "f"});  // other braces are text
}

TEST_CASE("a substituted line stays one argument, whatever it holds", "[command_template]") {
  CHECK(run("cat {}", "a; rm -rf x") == args{"cat", "a; rm -rf x"});
  CHECK(run("cat {}", "$(id)") == args{"cat", "$(id)"});
  CHECK(run("cat pre{}post", "my file") == args{"cat", "premy filepost"});
  CHECK(run("wc -l", "with space") == args{"wc", "-l", "with space"});  // no placeholder: appended
}

TEST_CASE("placeholders give GNU parallel's values", "[command_template]") {
  const std::string line = "dir/sub/file.tar.gz";
  CHECK(run("x {}", line) == args{"x", line});
  CHECK(run("x {.}", line) == args{"x", "dir/sub/file.tar"});
  CHECK(run("x {/}", line) == args{"x", "file.tar.gz"});
  CHECK(run("x {//}", line) == args{"x", "dir/sub"});
  CHECK(run("x {/.}", line) == args{"x", "file.tar"});
  CHECK(run("x {#} {%}", line, 17, 3) == args{"x", "17", "3"});
  CHECK(run("x {.} {//} {/.}", "plain") == args{"x", "plain", ".", "plain"});
  CHECK(run("x {.}", "a.d/file") == args{"x", "a.d/file"});     // a dot in a folder is no extension
  CHECK(run("x {.} {/.}", ".bashrc") == args{"x", ".bashrc", ".bashrc"});  // nor a leading dot
  CHECK(run("x {//}", "/top") == args{"x", "/"});
  CHECK(run("x {#}", "a") == args{"x", "1"});  // a placeholder, even {#}, means nothing is appended
}

TEST_CASE("a bad template is an input error before anything runs", "[command_template]") {
  CHECK_THROWS_WITH(parse_command_template("gzip {..}"), Contains("unknown placeholder {..}"));
  CHECK_THROWS_WITH(parse_command_template("gzip {#/}"), Contains("unknown placeholder {#/}"));
  CHECK_THROWS_WITH(parse_command_template("   "), Contains("the command is empty"));
  CHECK_THROWS_WITH(parse_command_template(""), Contains("the command is empty"));
  CHECK_THROWS_WITH(parse_command_template("echo 'open"), Contains("unclosed single quote"));
  CHECK_THROWS_WITH(parse_command_template("echo \"open"), Contains("unclosed double quote"));
  CHECK_THROWS_AS(parse_command_template("x {%%}"), amorsize::input_error);
}

TEST_CASE("shell code quotes every substituted value for the shell", "[command_template]") {
  CHECK(expand_for_shell("gzip -9 {} > {}.gz", {"a b.txt", 1, 1}) == "gzip -9 'a b.txt' > 'a b.txt'.gz");
  CHECK(expand_for_shell("echo {/} {#}", {"d/it's", 4, 2}) == "echo 'it'\\''s' '4'");
  CHECK(expand_for_shell("sleep 1; echo", {"$(id)", 1, 1}) == "sleep 1; echo '$(id)'");
  CHECK_THROWS_WITH(expand_for_shell(" ", {"x", 1, 1}), Contains("the command is empty"));
  CHECK_THROWS_WITH(expand_for_shell("echo {..}", {"x", 1, 1}), Contains("unknown placeholder"));
}
